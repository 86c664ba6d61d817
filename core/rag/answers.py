"""Retrieval-augmented answers: one question's retrieval, prompt (core.rag.prompting) and
streamed answer with its passage marks (core.rag.citations). A question that the retrieved
chunks do not bear on (core.rag.relevance.answerable, after core.rag.rating.rate_by_meaning)
is answered "The documents do not say." without asking the model, which would otherwise make an
answer up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import InputError
from core.rag import definitions, followup, relevance, store
from core.rag.citations import (
    REFUSAL,
    cited_ranks,
    infer_citations,
    is_refusal,
    stream_marked,
    with_marks,
    without_marks,
)
from core.rag.grounding import reference_numbers, table_numbers, unread_numbers
from core.rag.hits import Hit
from core.rag.llm import ChatEngine, StreamStats, timed
from core.rag.prompting import (
    NO_CONTEXT_PROMPT,
    TEMPLATE_OVERHEAD_TOKENS,
    TURN_TOKENS,
    build_prompt,
    echoes,
    nearby_chunks,
    newest_that_fit,
    passage_texts,
    reword_messages,
)
from core.rag.quantities import other_amounts, other_counts
from core.rag.restatement import restates
from core.rag.retrieval import (
    SCORE_MEANING,
    Method,
    RetrievalOptions,
    SearchResult,
    search,
    weakly_matched,
    worth_reading,
)
from core.settings import Settings

NOTHING_FOUND = ("No passage of this collection matched the question, so there is nothing to "
                 "answer from.")
# A question, not a document: longer text belongs in the collection, and would crowd the
# passages out of the model's window.
MAX_QUESTION_CHARS = 2000


@dataclass
class Answer:
    question: str
    text: str
    sources: list[Hit]
    used: list[int]
    dropped: list[int]
    cited: list[int]
    citations_inferred: bool
    attributions: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    engine: str = ""
    stopped: bool = False
    answerable: bool = True  # False: the chunks did not bear on the question; the model was not asked
    method: Method = "hybrid"  # the retrieval method, which says what the raw scores mean
    no_context: str | None = None  # the same model's answer without retrieval, when compared
    windows: dict[int, dict] = field(default_factory=dict)  # rank -> the text read around it
    # the standalone query a follow-up was rewritten into, acronyms spelled out (SearchResult)
    searched_for: str = ""
    # The answer only says the question back (core.rag.restatement): shown with a warning
    restates_question: bool = False
    # the documents whose chunks came first (SearchResult.within), and why (its `because`)
    searched_in: list[str] = field(default_factory=list)
    searched_in_because: str = ""
    # numbers the answer gives that nothing the model read holds (core.rag.grounding)
    unread_numbers: list[str] = field(default_factory=list)
    # answered though every passage is a weak match (above the refusal line, below "partial")
    only_weak_matches: bool = False
    # the previous answer worded another way, from its passages: "reworded", or "unchanged"
    # where the model gave it back word for word (the 0.5B did, asked to say it more simply)
    rewording: str | None = None
    # numbers the answer gives that the passages hold only as a section, table or citation
    # number (core.rag.grounding)
    reference_numbers: list[str] = field(default_factory=list)
    # for "How many X…?", numbers the answer gives that the passages hold, but not as a number
    # of X (core.rag.quantities.other_counts)
    other_counts: list[str] = field(default_factory=list)
    # for "How many X…?", the other amounts of X the sentence giving the answer's holds: BERT's
    # base and large sizes side by side (core.rag.quantities.other_amounts)
    other_amounts: list[str] = field(default_factory=list)
    # numbers the answer gives that the passages hold only in a table's rows, where a small
    # model often reads the wrong cell (core.rag.grounding.table_numbers)
    table_numbers: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"answer": self.text, "sources": [h.to_json() for h in self.sources],
                "cited": self.cited, "citations_inferred": self.citations_inferred,
                "dropped": self.dropped, "answerable": self.answerable,
                "refused": is_refusal(self.text), "timings": self.timings, "engine": self.engine,
                "no_context": self.no_context, "windows": self.windows,
                "searched_for": self.searched_for, "method": self.method,
                "restates_question": self.restates_question, "searched_in": self.searched_in,
                "searched_in_because": self.searched_in_because,
                "unread_numbers": self.unread_numbers, "only_weak_matches": self.only_weak_matches,
                "rewording": self.rewording, "reference_numbers": self.reference_numbers,
                "other_counts": self.other_counts, "other_amounts": self.other_amounts,
                "table_numbers": self.table_numbers, "stopped": self.stopped,
                "used": self.used, "attributions": self.attributions}

    @classmethod
    def from_json(cls, question: str, raw: dict) -> Answer:
        """An answer saved by to_json (a stored conversation), to show again."""
        hits = [Hit.from_json(h) for h in raw.get("sources", [])]
        return cls(question, raw.get("answer", ""), hits, raw.get("used", []),
                   raw.get("dropped", []), raw.get("cited", []),
                   raw.get("citations_inferred", False), raw.get("attributions", []),
                   raw.get("timings", {}), raw.get("engine", ""), raw.get("stopped", False),
                   raw.get("answerable", True), raw.get("method", "hybrid"),
                   raw.get("no_context"),
                   {int(k): v for k, v in raw.get("windows", {}).items()},
                   raw.get("searched_for", ""), raw.get("restates_question", False),
                   raw.get("searched_in", []),
                   # saved before the reason was kept, only a named document came first
                   raw.get("searched_in_because", "named" if raw.get("searched_in") else ""),
                   raw.get("unread_numbers", []), raw.get("only_weak_matches", False),
                   raw.get("rewording"), raw.get("reference_numbers", []),
                   raw.get("other_counts", []), raw.get("other_amounts", []),
                   raw.get("table_numbers", []))


class RagTurn:
    """One question: retrieval happens on construction (so its chunks can be shown at once),
    the answer streams from `stream()`, and `result()` gives everything once it has finished.
    `finish()` gives the result once only, to whichever of two threads asks first (see
    `app_pages/chat.py`: a Stop click records the turn from the next run of the page, while the
    interrupted run may still come back from the model and reach its own finish())."""

    def __init__(self, settings: Settings, collection: str, question: str, engine: ChatEngine,
                 options: RetrievalOptions = RetrievalOptions(), max_new_tokens: int = 256,
                 stop: threading.Event | None = None, chroma=None,
                 history: Sequence[dict] = ()):
        """`history`: the conversation so far as chat messages (role, content). A question
        that leans on it is searched as a standalone query the model rewrites it into, and the
        newest earlier questions go into the prompt with whatever room the passages leave."""
        if len(question) > MAX_QUESTION_CHARS:
            raise InputError(f"the question is {len(question):,} characters long; the limit is "
                             f"{MAX_QUESTION_CHARS:,}. Ask it in fewer words, or add the text to "
                             "the collection as a document")
        self.settings, self.question, self.engine = settings, question, engine
        self.max_new_tokens, self.stop = max_new_tokens, stop or threading.Event()
        chroma = chroma or store.client(settings)
        earlier = [m for m in history if m["role"] in ("user", "assistant")]
        answers = [m for m in earlier if m["role"] == "assistant"]
        previous = answers[-1] if answers and followup.about_the_answer(question) else None
        # the previous answer, when this question asks for it worded another way
        self.rewording: str | None = previous["content"] if previous else None
        saved = (previous or {}).get("answer") or {}  # all of it, where the conversation kept it
        if saved.get("sources"):
            # That answer's own passages, as a saved conversation keeps them: its marks,
            # carried over, point at them, which searching again need not find in that order.
            kept = Answer.from_json(question, saved)
            self.search = SearchResult(kept.sources, kept.method, SCORE_MEANING[kept.method],
                                       0.0, query=kept.searched_for)
            self.searched_in, self.searched_in_because = (kept.searched_in,
                                                          kept.searched_in_because)
        else:
            discussed = (cited_documents(answers[-1])
                         if answers and followup.needs_rewrite(question, earlier) else ())
            query = followup.rewrite(engine, question, history, bool(discussed))
            self.search = search(settings, collection, query, options, chroma, asked=question,
                                 discussed=discussed)
            if discussed and query == question and weakly_matched(self.search.hits):
                # the documents discussed say what "it" is, not what "the first one" is
                self.search = search(settings, collection,
                                     followup.with_previous(question, history), options,
                                     chroma, asked=question, discussed=discussed)
            self.searched_in = sorted({h.doc for h in self.search.hits
                                       if h.doc_id in self.search.within})
            self.searched_in_because = self.search.because
        self.searched_for = self.search.query
        nearby = nearby_chunks(store.get_collection(chroma, collection), self.search.hits,
                               options.window)
        # Asked what an abbreviation stands for, the model reads the passage that spells it
        # out without weak ones beside it. Given none but strong and partial passages to any
        # question, it wrote SQuAD's answers out in sentences ("In the 1050s, Hervé served as
        # a Byzantine general." for "1050s [1]"): F1 0.454 -> 0.368 (bench/README.md).
        given = (worth_reading(self.search.hits)
                 if definitions.asked_abbreviation(question) and self.rewording is None
                 else self.search.hits)
        self.plan = build_prompt(question, given, engine, max_new_tokens, nearby,
                                 options.window, options.window_tokens)
        room = (engine.context_window - max_new_tokens - TEMPLATE_OVERHEAD_TOKENS
                - sum(engine.count_tokens(m["content"]) + TURN_TOKENS
                      for m in self.plan.messages))
        # Only a follow-up reads the earlier turns: given them, the 0.5B answered "Who are
        # the authors of the GAN paper?" with the BERT authors of its previous answer, though
        # its one passage was the GAN paper's title block. And it reads the earlier questions,
        # not its answers, which it copied too: "How is it trained?" after GAN's authors got
        # the authors again. Over 10 follow-ups on the shared papers, questions only answered
        # 2 better ("And on English-to-French?": 41.8, from "On English-to-French."), 1 a
        # little worse, 7 alike (bench/README.md)
        # A request about the previous answer ("Can you say that in a full sentence?") is
        # about its wording, not the documents: given the passages, the 0.5B replied "Yes, I
        # can explain it more simply." and made a list of "Zambia"; given the answer alone,
        # it reworded it. The passages are still that answer's, for the panel and for the
        # marks it carries over.
        if self.rewording is not None:
            self.plan.messages = reword_messages(earlier, question)
        elif followup.needs_rewrite(question, earlier):
            asked = [m for m in earlier if m["role"] == "user"]
            self.plan.messages[:0] = newest_that_fit(asked, engine, room)
        self.answerable = (self.rewording is not None or self.search.placed
                           or relevance.answerable([h.relevance for h in self.search.hits]))
        self.stats = StreamStats()
        self.no_context: StreamStats | None = None  # set by a caller that also asks without
        self._finished = False
        self._finish_lock = threading.Lock()

    def stream(self) -> Iterator[str]:
        self.stats = StreamStats()
        if not self.plan.used:
            yield from timed(iter([NOTHING_FOUND]), self.stats)
            return
        if not self.answerable:  # the closest passages are still shown beside the answer
            yield from timed(iter([REFUSAL]), self.stats)
            return
        if self.rewording is not None:  # the same facts, so the answer reworded's sources
            pieces = with_marks(self.engine.stream(self.plan.messages, self.max_new_tokens,
                                                   self.stop),
                                cited_ranks(self.rewording, self.plan.used))
        elif hasattr(self.engine, "choose"):
            pieces = stream_marked(self.engine, self.plan.messages, passage_texts(self.plan),
                                   self.max_new_tokens, self.stop, echoes(self.plan.used),
                                   self.question)
        else:  # an engine that cannot be steered: inferred citations, labelled as such
            pieces = self.engine.stream(self.plan.messages, self.max_new_tokens, self.stop)
        yield from timed(pieces, self.stats)

    def finish(self, stop: bool = False) -> Answer | None:
        """The answer the first time, None afterwards: a turn goes into the history once. With
        `stop`, the model is told to stop in the same step, so the reader that is still
        streaming sees None from its own finish() and records nothing."""
        with self._finish_lock:
            if self._finished:
                return None
            self._finished = True
            if stop:
                self.stop.set()
        return self.result()

    def result(self) -> Answer:
        text = self.stats.text.strip()
        cited = [] if is_refusal(text) else cited_ranks(text, self.plan.used)
        attributions, inferred = [], False
        if not cited and self.plan.used and not is_refusal(text) and text != NOTHING_FOUND:
            attributions = infer_citations(self.settings, text, self.plan.used,
                                           question=self.question)
            cited = sorted({a["rank"] for a in attributions})
            inferred = bool(cited)
        # A refusal or "nothing found" is written without the model: no model timings for it
        # (a first token at 0.0 s and 84,121 tokens/s read as if the model had run).
        asked = bool(self.plan.used) and self.answerable
        read = "\n".join(m["content"] for m in self.plan.messages)
        tps = self.stats.tokens_per_s(self.engine) if asked else None
        timings: dict[str, Any] = {"retrieval_ms": round(self.search.seconds * 1000, 1),
                   "ttft_ms": None if self.stats.ttft_s is None or not asked
                   else round(self.stats.ttft_s * 1000, 1),
                   "tokens_per_s": None if tps is None else round(tps, 1),
                   "total_ms": round(((self.stats.finished_at or time.perf_counter())
                                      - self.stats.started) * 1000, 1)}
        if self.no_context is not None and self.no_context.ttft_s is not None:
            alone = self.no_context.tokens_per_s(self.engine)
            timings["no_context"] = {"ttft_ms": round(self.no_context.ttft_s * 1000, 1),
                                     "tokens_per_s": None if alone is None else round(alone, 1)}
        return Answer(self.question, text, self.search.hits, [h.rank for h in self.plan.used],
                      [h.rank for h in self.plan.dropped], cited, inferred, attributions,
                      timings, self.engine.name, self.stop.is_set(), self.answerable,
                      self.search.method,
                      None if self.no_context is None else self.no_context.text.strip(),
                      self.plan.windows, self.searched_for,
                      searched_in=self.searched_in, searched_in_because=self.searched_in_because,
                      restates_question=asked and self.rewording is None
                      and not self.stop.is_set() and restates(self.question, text),
                      unread_numbers=unread_numbers(text, read) if asked else [],
                      reference_numbers=reference_numbers(text, read) if asked else [],
                      other_counts=other_counts(self.question, text, read) if asked else [],
                      other_amounts=other_amounts(self.question, text, read) if asked else [],
                      table_numbers=table_numbers(text, read) if asked else [],
                      only_weak_matches=asked and self.rewording is None
                      and not self.search.placed and weakly_matched(self.plan.used),
                      rewording=None if self.rewording is None else (
                          "unchanged" if without_marks(text) == without_marks(self.rewording)
                          else "reworded"))


def cited_documents(message: dict) -> tuple[str, ...]:
    """The documents an earlier answer (an assistant message holding its saved answer, as a
    conversation keeps it) cites; none for a refusal, or where only its text was kept."""
    saved = message.get("answer") or {}
    cited = set(saved.get("cited", []))
    return tuple(sorted({s["doc_id"] for s in saved.get("sources", [])
                         if s.get("rank") in cited and s.get("doc_id")}))


def no_context_stream(engine: ChatEngine, question: str, stats: StreamStats,
                      max_new_tokens: int = 256,
                      stop: threading.Event | None = None) -> Iterator[str]:
    """The same model with no retrieved context: what it says from memory alone."""
    messages = [{"role": "system", "content": NO_CONTEXT_PROMPT},
                {"role": "user", "content": question}]
    return timed(engine.stream(messages, max_new_tokens, stop), stats)

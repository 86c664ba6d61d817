"""Retrieval-augmented answers: numbered context within the model's window, citations [n], and
when the model leaves them out, citations inferred sentence by sentence. A question that the
retrieved chunks do not bear on (core.rag.relevance) is answered "The documents do not say."
without asking the model, which would otherwise make an answer up."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError
from core.rag import followup, relevance, store
from core.rag.embeddings import query_embedder
from core.rag.llm import ChatEngine, StreamStats, timed
from core.rag.retrieval import Hit, RetrievalOptions, SearchResult, search
from core.settings import Settings

REFUSAL = "The documents do not say."
# Measured with the default model (Qwen2.5-Coder-0.5B) on 8 answerable SQuAD 2.0 questions
# (work/scratch runs of issue 13): every prompt that asked it to write [n] marks itself, in the
# system prompt, repeated after the question, or with an example sentence, cost the answer: it
# wrote a bare "[1]", copied the passage's heading or the example, or refused answerable
# questions (token F1 0.00-0.17). LangChain's "stuff" prompt, which asks for nothing but the
# answer, gave 0.24 with three hits and a window of one neighbour. So the model answers in
# its own words, and the marks come from the model in a step of their own (stream_marked).
ANSWER_PROMPT = ("Use the following pieces of context to answer the question at the end. If "
                 "you don't know the answer, just say that you don't know, don't try to make "
                 "up an answer.\n\n{context}\n\nQuestion: {question}\nHelpful Answer:")
NO_CONTEXT_PROMPT = "Answer the question in at most three sentences."
NOTHING_FOUND = ("No passage of this collection matched the question, so there is nothing to "
                 "answer from.")
TEMPLATE_OVERHEAD_TOKENS = 64  # role markers, separators and the template's default system line
TURN_TOKENS = 8  # role markers and separators around one earlier message
# A question, not a document: longer text belongs in the collection, and would crowd the
# passages out of the model's window.
MAX_QUESTION_CHARS = 2000
INFER_MIN_SIMILARITY = 0.35
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_REFUSALS = ("the documents do not say", "the documents don't say", "i don't know",
             "i do not know", "the context does not", "the context doesn't")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A sentence ends at . ! or ? after a word (not "1." of a list), before a space; not after
# the abbreviations papers use.
_ENDS_SENTENCE = re.compile(r"[^\s\d][.!?][\"')\]]?$")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "etc.", "Fig.", "Eq.", "vs.", "cf.", "No.")


Key = tuple[str, int]  # (doc_id, chunk index): one chunk of one document


@dataclass
class PromptPlan:
    messages: list[dict]
    used: list[Hit]
    dropped: list[Hit]
    windows: dict[int, dict] = field(default_factory=dict)  # rank -> text "before"/"after" it


def _row(hit: Hit) -> dict:
    return {"doc_id": hit.doc_id, "chunk": hit.chunk, "page": hit.page, "start": hit.start,
            "end": hit.end, "text": hit.text}


def merged_text(rows: list[dict]) -> str:
    """Consecutive chunks of one document as one text: where chunks overlap on a page the
    overlap is written once (their spans say where)."""
    out, prev = "", None
    for row in rows:
        if prev is None:
            out = row["text"]
        elif row["page"] == prev["page"] and row["start"] < prev["end"]:
            out += row["text"][prev["end"] - row["start"]:]
        else:
            out += ("\n" if row["page"] == prev["page"] else "\n\n") + row["text"]
        prev = row
    return out


def _runs(chosen: dict[Key, dict], hits: list[Hit]) -> list[tuple[Hit, list[dict]]]:
    """Chosen chunks that follow each other in a document, as one passage led by the best hit
    inside it; passages in the order of their best hits."""
    runs: list[list[Key]] = []
    for key in sorted(chosen):
        if runs and runs[-1][-1] == (key[0], key[1] - 1):
            runs[-1].append(key)
        else:
            runs.append([key])
    by_key = {(h.doc_id, h.chunk): h for h in hits}
    led = [(min((by_key[k] for k in run if k in by_key), key=lambda h: h.rank),
            [chosen[k] for k in run]) for run in runs]
    return sorted(led, key=lambda pair: pair[0].rank)


def context_block(lead: Hit, rows: list[dict]) -> str:
    first, last = rows[0]["page"], rows[-1]["page"]
    pages = f"page {first}" if first == last else f"pages {first}–{last}"
    section = f" · {lead.section}" if lead.section else ""
    # The title, not the file name: a small model took the numbers of names such as
    # "1805.02400.pdf" for answers ("How many reviews…?" → "1805.02400").
    return (f"Passage {lead.rank} ({lead.title or lead.doc}, {pages}{section}):\n"
            f"{merged_text(rows)}")


def _user_message(question: str, chosen: dict[Key, dict], hits: list[Hit]) -> str:
    context = "\n\n".join(context_block(lead, rows) for lead, rows in _runs(chosen, hits))
    return ANSWER_PROMPT.format(context=context, question=question)


def build_prompt(question: str, hits: list[Hit], engine: ChatEngine, max_new_tokens: int,
                 nearby: dict[Key, dict] | None = None, window: int = 0) -> PromptPlan:
    """Whole chunks in rank order while they fit the model's window (a chunk that does not fit
    is dropped, never cut); then, one ring of `window` at a time, the neighbouring chunks from
    `nearby` around each hit, best hits first, while they fit. Chunks that meet are merged into
    one passage, so no text is given twice."""
    limit = engine.context_window - max_new_tokens - TEMPLATE_OVERHEAD_TOKENS
    chosen: dict[Key, dict] = {}

    def take(key: Key, row: dict) -> None:
        if engine.count_tokens(_user_message(question, {**chosen, key: row}, hits)) <= limit:
            chosen[key] = row

    for hit in hits:
        take((hit.doc_id, hit.chunk), _row(hit))
    nearby = nearby or {}
    for distance in range(1, window + 1):
        for hit in hits:
            for step in (-1, 1):
                key, inner = ((hit.doc_id, hit.chunk + step * d) for d in (distance, distance - 1))
                if key in nearby and key not in chosen and inner in chosen:
                    take(key, nearby[key])
    used = [h for h in hits if (h.doc_id, h.chunk) in chosen]
    return PromptPlan([{"role": "user", "content": _user_message(question, chosen, hits)}],
                      used, [h for h in hits if h not in used], _windows(chosen, used))


def _windows(chosen: dict[Key, dict], used: list[Hit]) -> dict[int, dict]:
    """For each hit, the text the model read before and after it."""
    windows = {}
    for _, rows in _runs(chosen, used):
        for i, row in enumerate(rows):
            hit = next((h for h in used if (h.doc_id, h.chunk) == (row["doc_id"], row["chunk"])),
                       None)
            if hit:
                windows[hit.rank] = {"before": merged_text(rows[:i]),
                                     "after": merged_text(rows[i + 1:])}
    return windows


def nearby_chunks(collection, hits: list[Hit], window: int) -> dict[Key, dict]:
    """The chunks within `window` of each hit, read from Chroma by doc id and chunk index."""
    rows = {}
    for hit in hits if window else []:
        for row in store.neighbours(collection, hit.doc_id, hit.chunk, window):
            rows[(row["doc_id"], int(row["chunk"]))] = row
    return rows


def citation_marks(answer: str) -> list[int]:
    """Every number the answer cites, in [1], [2][3] or [1, 2] form."""
    return sorted({int(n) for group in _CITATION.findall(answer) for n in group.split(",")})


def cited_ranks(answer: str, used: list[Hit]) -> list[int]:
    """The marks that point at a passage the model was given; others are not citations."""
    valid = {h.rank for h in used}
    return [n for n in citation_marks(answer) if n in valid]


def is_refusal(answer: str) -> bool:
    """Also when the model put a mark before it ("[1] The documents do not say."), as the
    reminder's example leads it to."""
    return _CITATION.sub("", answer).strip().lower().replace("’", "'").startswith(_REFUSALS)


def infer_citations(settings: Settings, answer: str, used: list[Hit],
                    embedding_model: str | None = None) -> list[dict]:
    """Each answer sentence attributed to the chunk it is most similar to (when similar enough)."""
    sentences = [s for s in _SENTENCE_END.split(answer.strip()) if len(s.split()) >= 3]
    if not sentences or not used:
        return []
    embedder = query_embedder(settings, embedding_model)
    s_vec = np.asarray(embedder.embed(sentences))
    c_vec = np.asarray(embedder.embed([h.text for h in used]))
    sims = s_vec @ c_vec.T
    links = []
    for sentence, row in zip(sentences, sims):
        best = int(np.argmax(row))
        if row[best] >= INFER_MIN_SIMILARITY:
            links.append({"sentence": sentence, "rank": used[best].rank,
                          "similarity": round(float(row[best]), 3)})
    return links


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
    method: str = "hybrid"  # the retrieval method, which says what the raw scores mean
    no_context: str | None = None  # the same model's answer without retrieval, when compared
    windows: dict[int, dict] = field(default_factory=dict)  # rank -> the text read around it
    searched_for: str = ""  # the standalone query a follow-up question was rewritten into

    def to_json(self) -> dict:
        return {"answer": self.text, "sources": [h.to_json() for h in self.sources],
                "cited": self.cited, "citations_inferred": self.citations_inferred,
                "dropped": self.dropped, "answerable": self.answerable,
                "refused": is_refusal(self.text), "timings": self.timings, "engine": self.engine,
                "no_context": self.no_context, "windows": self.windows,
                "searched_for": self.searched_for, "method": self.method,
                "stopped": self.stopped, "used": self.used, "attributions": self.attributions}

    @classmethod
    def from_json(cls, question: str, raw: dict) -> Answer:
        """An answer saved by to_json (a stored conversation), to show again."""
        hits = [Hit(**{k: v for k, v in h.items() if k in Hit.__dataclass_fields__})
                for h in raw.get("sources", [])]
        return cls(question, raw.get("answer", ""), hits, raw.get("used", []),
                   raw.get("dropped", []), raw.get("cited", []),
                   raw.get("citations_inferred", False), raw.get("attributions", []),
                   raw.get("timings", {}), raw.get("engine", ""), raw.get("stopped", False),
                   raw.get("answerable", True), raw.get("method", "hybrid"),
                   raw.get("no_context"),
                   {int(k): v for k, v in raw.get("windows", {}).items()},
                   raw.get("searched_for", ""))


def newest_that_fit(turns: Sequence[dict], engine: ChatEngine, budget: int) -> list[dict]:
    """The newest earlier messages whose tokens fit `budget`, oldest first."""
    kept: list[dict] = []
    for turn in reversed(turns):
        budget -= engine.count_tokens(turn["content"]) + TURN_TOKENS
        if budget < 0:
            break
        kept.append(turn)
    return kept[::-1]


class RagTurn:
    """One question: retrieval happens on construction (so its chunks can be shown at once),
    the answer streams from `stream()`, and `result()` gives everything once it has finished.
    `finish()` gives the result once only, to whichever of two threads asks first (see
    `pages/chat.py`: a Stop click records the turn from the next run of the page, while the
    interrupted run may still come back from the model and reach its own finish())."""

    def __init__(self, settings: Settings, collection: str, question: str, engine: ChatEngine,
                 options: RetrievalOptions = RetrievalOptions(), max_new_tokens: int = 256,
                 stop: threading.Event | None = None, chroma=None,
                 history: Sequence[dict] = ()):
        """`history`: the conversation so far as chat messages (role, content). A question
        that leans on it is searched as a standalone query the model rewrites it into, and the
        newest turns go into the prompt with whatever room the passages leave."""
        if len(question) > MAX_QUESTION_CHARS:
            raise InputError(f"the question is {len(question):,} characters long; the limit is "
                             f"{MAX_QUESTION_CHARS:,}. Ask it in fewer words, or add the text to "
                             "the collection as a document")
        self.settings, self.question, self.engine = settings, question, engine
        self.max_new_tokens, self.stop = max_new_tokens, stop or threading.Event()
        chroma = chroma or store.client(settings)
        self.searched_for = followup.rewrite(engine, question, history)
        self.search: SearchResult = search(settings, collection, self.searched_for, options,
                                           chroma)
        nearby = nearby_chunks(store.get_collection(chroma, collection), self.search.hits,
                               options.window)
        self.plan = build_prompt(question, self.search.hits, engine, max_new_tokens, nearby,
                                 options.window)
        room = (engine.context_window - max_new_tokens - TEMPLATE_OVERHEAD_TOKENS
                - sum(engine.count_tokens(m["content"]) + TURN_TOKENS
                      for m in self.plan.messages))
        earlier = [m for m in history if m["role"] in ("user", "assistant")]
        self.plan.messages[:0] = newest_that_fit(earlier, engine, room)
        self.answerable = relevance.answerable([h.relevance for h in self.search.hits])
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
        if hasattr(self.engine, "choose"):
            pieces = stream_marked(self.engine, self.plan.messages,
                                   [h.rank for h in self.plan.used], self.max_new_tokens,
                                   self.stop)
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
            attributions = infer_citations(self.settings, text, self.plan.used)
            cited = sorted({a["rank"] for a in attributions})
            inferred = bool(cited)
        tps = self.stats.tokens_per_s(self.engine)
        timings = {"retrieval_ms": round(self.search.seconds * 1000, 1),
                   "ttft_ms": None if self.stats.ttft_s is None
                   else round(self.stats.ttft_s * 1000, 1),
                   "tokens_per_s": None if tps is None else round(tps, 1),
                   "total_ms": round(((self.stats.finished_at or time.perf_counter())
                                      - self.stats.started) * 1000, 1)}
        return Answer(self.question, text, self.search.hits, [h.rank for h in self.plan.used],
                      [h.rank for h in self.plan.dropped], cited, inferred, attributions,
                      timings, self.engine.name, self.stop.is_set(), self.answerable,
                      self.search.method,
                      None if self.no_context is None else self.no_context.text.strip(),
                      self.plan.windows, self.searched_for)


def _ends_sentence(text: str) -> bool:
    return bool(_ENDS_SENTENCE.search(text)) and not text.endswith(_ABBREVIATIONS)


def stream_marked(engine, messages: list[dict], ranks: list[int], max_new_tokens: int,
                  stop: threading.Event) -> Iterator[str]:
    """The model's answer with a passage mark after each sentence that lacks one, the number
    chosen by the model itself: at each sentence end the reply so far is followed by " [" and
    the model may write only one of the given passages' numbers. The answer stops there and
    carries on from the marked text (llama.cpp reads only the new tokens), so the marks
    stream with the answer and the model reads them as its own."""
    reply, budget = "", max_new_tokens
    sentence_start = 0  # where the sentence being written begins: after the last mark
    choices = [f"{r}]" for r in ranks]
    while budget > 0:
        space = ""  # what the model wrote after its sentence, put back after the mark
        with closing(engine.continue_reply(messages, reply, budget, stop)) as pieces:
            for piece in pieces:
                budget -= 1
                if reply[-1:].isspace() and len(reply) == sentence_start:
                    piece = piece.lstrip(" ")  # the space after a mark is already written
                # A token may carry a sentence's end and the space after it (".\n\n"):
                # the space is kept for after the mark (the model took a reply that ends in
                # its mark for a finished one); what follows it is written again.
                cut = next((i for i, ch in enumerate(piece) if ch.isspace()), None)
                if cut is not None and _ends_sentence(reply + piece[:cut]):
                    rest = piece[cut:]
                    space = rest[:len(rest) - len(rest.lstrip())]
                    piece = piece[:cut]
                reply += piece
                yield piece
                if space:
                    break
        sentence = reply[sentence_start:]
        if (sentence.strip() and not stop.is_set() and not is_refusal(reply)
                and not set(citation_marks(sentence)) & set(ranks)):
            mark = " [" + engine.choose(messages, reply + " [", choices)
            reply += mark
            yield mark
        if not space or stop.is_set():
            return
        reply += space
        yield space
        sentence_start = len(reply)


def no_context_stream(engine: ChatEngine, question: str, stats: StreamStats,
                      max_new_tokens: int = 256,
                      stop: threading.Event | None = None) -> Iterator[str]:
    """The same model with no retrieved context: what it says from memory alone."""
    messages = [{"role": "system", "content": NO_CONTEXT_PROMPT},
                {"role": "user", "content": question}]
    return timed(engine.stream(messages, max_new_tokens, stop), stats)


def to_markdown(collection: str, answers: list[Answer]) -> str:
    """A conversation as Markdown, each answer with the sources it was given."""
    lines = [f"# Chat with collection `{collection}`", ""]
    for a in answers:
        lines += [f"## Q: {a.question}", "", a.text, ""]
        if not a.answerable:
            lines += ["*No passage bore on the question; the closest ones:*", ""]
        if a.no_context is not None:
            lines += ["*The same model without retrieval:*", "", a.no_context, ""]
        how = "inferred by similarity" if a.citations_inferred else "cited by the model"
        lines += [f"*Sources ({how}: {', '.join(f'[{n}]' for n in a.cited) or 'none'}):*", ""]
        for h in a.sources:
            mark = " (cited)" if h.rank in a.cited else ""
            snippet = " ".join(h.text.split())[:300]
            lines.append(f"- [{h.rank}] {h.doc}, page {h.page}, {h.match} match{mark}: "
                         f"{snippet}")
        lines.append("")
    return "\n".join(lines)

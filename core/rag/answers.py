"""Retrieval-augmented answers: numbered context within the model's window, citations [n], and
when the model leaves them out, citations inferred sentence by sentence."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from core.rag.embeddings import get_embedder
from core.rag.llm import ChatEngine, StreamStats, timed
from core.rag.retrieval import Hit, RetrievalOptions, SearchResult, search
from core.settings import Settings

SYSTEM_PROMPT = (
    "You answer questions about the user's documents using only the numbered context passages. "
    "Cite the passages you use by their numbers in square brackets, like [1] or [2][3]. "
    "If the context does not contain the answer, reply exactly: I don't know. "
    "Answer in at most three sentences.")
NO_CONTEXT_PROMPT = "Answer the question in at most three sentences."
NOTHING_FOUND = ("No passage of this collection matched the question, so there is nothing to "
                 "answer from.")
TEMPLATE_OVERHEAD_TOKENS = 48  # role markers and separators the chat template adds
INFER_MIN_SIMILARITY = 0.35
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class PromptPlan:
    messages: list[dict]
    used: list[Hit]
    dropped: list[Hit]


def context_block(hit: Hit) -> str:
    return f"[{hit.rank}] ({hit.doc}, page {hit.page})\n{hit.text}"


def build_prompt(question: str, hits: list[Hit], engine: ChatEngine,
                 max_new_tokens: int) -> PromptPlan:
    """Whole chunks in rank order while they fit the window; the rest are dropped, never cut."""
    budget = (engine.context_window - max_new_tokens - TEMPLATE_OVERHEAD_TOKENS
              - engine.count_tokens(SYSTEM_PROMPT) - engine.count_tokens(question))
    used, dropped = [], []
    for hit in hits:
        cost = engine.count_tokens(context_block(hit)) + 2
        if cost <= budget:
            used.append(hit)
            budget -= cost
        else:
            dropped.append(hit)
    context = "\n\n".join(context_block(h) for h in used)
    user = f"Context:\n\n{context}\n\nQuestion: {question}"
    return PromptPlan([{"role": "system", "content": SYSTEM_PROMPT},
                       {"role": "user", "content": user}], used, dropped)


def cited_ranks(answer: str, used: list[Hit]) -> list[int]:
    valid = {h.rank for h in used}
    found = {int(n) for group in _CITATION.findall(answer) for n in group.split(",")}
    return sorted(found & valid)


def is_refusal(answer: str) -> bool:
    return answer.strip().lower().startswith(("i don't know", "i do not know"))


def infer_citations(settings: Settings, answer: str, used: list[Hit],
                    embedding_model: str | None = None) -> list[dict]:
    """Each answer sentence attributed to the chunk it is most similar to (when similar enough)."""
    sentences = [s for s in _SENTENCE_END.split(answer.strip()) if len(s.split()) >= 3]
    if not sentences or not used:
        return []
    embedder = get_embedder(settings, embedding_model)
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
    no_context: str | None = None  # the same model's answer without retrieval, when compared

    def to_json(self) -> dict:
        return {"answer": self.text, "sources": [h.to_json() for h in self.sources],
                "cited": self.cited, "citations_inferred": self.citations_inferred,
                "dropped": self.dropped, "timings": self.timings, "engine": self.engine,
                "no_context": self.no_context}


class RagTurn:
    """One question: retrieval happens on construction (so its chunks can be shown at once),
    the answer streams from `stream()`, and `result()` gives everything once it has finished.
    `finish()` gives the result once only, to whichever of two threads asks first (see
    `pages/rag/chat.py`: a Stop click records the turn from the next run of the page, while the
    interrupted run may still come back from the model and reach its own finish())."""

    def __init__(self, settings: Settings, collection: str, question: str, engine: ChatEngine,
                 options: RetrievalOptions = RetrievalOptions(), max_new_tokens: int = 256,
                 stop: threading.Event | None = None, chroma=None):
        self.settings, self.question, self.engine = settings, question, engine
        self.max_new_tokens, self.stop = max_new_tokens, stop or threading.Event()
        self.search: SearchResult = search(settings, collection, question, options, chroma)
        self.plan = build_prompt(question, self.search.hits, engine, max_new_tokens)
        self.stats = StreamStats()
        self.no_context: StreamStats | None = None  # set by a caller that also asks without
        self._finished = False
        self._finish_lock = threading.Lock()

    def stream(self) -> Iterator[str]:
        self.stats = StreamStats()
        if not self.plan.used:
            yield from timed(iter([NOTHING_FOUND]), self.stats)
            return
        yield from timed(self.engine.stream(self.plan.messages, self.max_new_tokens, self.stop),
                         self.stats)

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
        cited = cited_ranks(text, self.plan.used)
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
                      timings, self.engine.name, self.stop.is_set(),
                      None if self.no_context is None else self.no_context.text.strip())


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
        if a.no_context is not None:
            lines += ["*The same model without retrieval:*", "", a.no_context, ""]
        how = "inferred by similarity" if a.citations_inferred else "cited by the model"
        lines += [f"*Sources ({how}: {', '.join(f'[{n}]' for n in a.cited) or 'none'}):*", ""]
        for h in a.sources:
            mark = " (cited)" if h.rank in a.cited else ""
            snippet = " ".join(h.text.split())[:300]
            lines.append(f"- [{h.rank}] {h.doc}, page {h.page}, score {h.score:.2f}{mark}: "
                         f"{snippet}")
        lines.append("")
    return "\n".join(lines)

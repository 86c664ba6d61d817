"""One chat completion for the OpenAI-compatible API: which engine answers, the prompt within
the model's window (the conversation's newest turns that fit), and the reply in OpenAI's
shapes, whole or as server-sent events, with the answer's sources."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator

from fastapi import HTTPException

from core.errors import StudioError
from core.rag.answer_notes import caveats
from core.rag.answers import RagTurn
from core.rag.hits import Hit
from core.rag.llm import ChatEngine, StreamStats, get_engine, timed
from core.rag.prompting import TEMPLATE_OVERHEAD_TOKENS, TURN_TOKENS, newest_that_fit
from core.rag.retrieval import RetrievalOptions
from core.registry import Registry
from core.settings import Settings

RAG = "rag:"
DEFAULT_MAX_TOKENS = 256
log = logging.getLogger(__name__)


def chat_models(settings: Settings) -> list[str]:
    """The registry's chat models that are ready, and the configured one when it is a folder."""
    registry = Registry.load(settings.registry_path, settings.models_dir)
    names = [s.name for s in registry.with_role("chat") if registry.available(s.name)]
    if settings.chat_model not in names and registry.available(settings.chat_model):
        names.append(settings.chat_model)
    return names


def engine_for(settings: Settings, model: str | None) -> ChatEngine:
    """A named local model, or (model None: a collection's answer) the Settings' engine."""
    return get_engine(settings, backend="local", model=model) if model else get_engine(settings)


def source(hit: Hit, cited: list[int] | None = None) -> dict:
    """A passage as the API shows it: every field of the hit (spans, score, and whatever
    retrieval adds later), the file as `document`, and whether the answer cites it."""
    row = hit.to_json()
    row["document"] = row.pop("doc")
    if cited is not None:
        row["cited"] = hit.rank in cited
    return row


class Ask:
    """The question is the last user message. For a collection, retrieval fills the prompt as
    in the Studio's chat and, for a follow-up, earlier questions go in with what room is left (a
    question that stands alone is answered without them, core.rag.answers); a plain model gets the
    system messages and the newest turns that fit. start() does that work (retrieval, counting
    tokens) once the request's turn in the queue has come."""

    def __init__(self, settings: Settings, chroma, engine: ChatEngine, turns: list[dict],
                 collection: str | None, max_tokens: int, options: RetrievalOptions,
                 stop: threading.Event):
        self.settings, self.chroma, self.engine, self.turns = settings, chroma, engine, turns
        self.collection, self.max_tokens, self.options, self.stop = (collection, max_tokens,
                                                                     options, stop)
        self.turn: RagTurn | None = None
        self.messages: list[dict] = []
        self.stats = StreamStats()

    def _room(self, messages: list[dict]) -> int:
        return (self.engine.context_window - self.max_tokens - TEMPLATE_OVERHEAD_TOKENS
                - sum(self.engine.count_tokens(m["content"]) + TURN_TOKENS for m in messages))

    def start(self) -> None:
        last = max(i for i, t in enumerate(self.turns) if t["role"] == "user")
        if self.collection:
            self.turn = RagTurn(self.settings, self.collection, self.turns[last]["content"],
                                self.engine, self.options, self.max_tokens, self.stop,
                                self.chroma, history=self.turns[:last])
            self.messages = self.turn.plan.messages
            return
        system = [t for t in self.turns if t["role"] == "system"]
        rest = [t for t in self.turns if t["role"] != "system"]
        kept = newest_that_fit(rest, self.engine, self._room(system))
        if not kept or kept[-1] is not rest[-1]:
            raise HTTPException(400, f"the last message does not fit the model's window of "
                                     f"{self.engine.context_window} tokens with max_tokens="
                                     f"{self.max_tokens}")
        self.messages = system + kept

    def pieces(self) -> Iterator[str]:
        if self.turn is not None:
            return self.turn.stream()
        return timed(self.engine.stream(self.messages, self.max_tokens, self.stop), self.stats)

    def finish(self) -> dict:
        """The answer's text, why it ended, its token counts and (for a collection) sources."""
        sources, extras = None, {}
        if self.turn is not None:
            answer = self.turn.result()
            text = answer.text
            sources = [source(h, answer.cited) for h in answer.sources]
            extras = {"restates_question": answer.restates_question,
                      "unread_numbers": answer.unread_numbers,
                      "reference_numbers": answer.reference_numbers,
                      "other_counts": answer.other_counts,
                      "other_amounts": answer.other_amounts,
                      "table_numbers": answer.table_numbers,
                      "only_weak_matches": answer.only_weak_matches,
                      "rewording": answer.rewording,
                      "searched_for": answer.searched_for, "searched_in": answer.searched_in,
                      "searched_in_because": answer.searched_in_because,
                      # the same checks as the sentences the Chat page shows
                      "caveats": caveats(answer)}
        else:
            text = self.stats.text.strip()
        completion = self.engine.count_tokens(text) if text else 0
        prompt = sum(self.engine.count_tokens(m["content"]) for m in self.messages)
        return {"text": text, "sources": sources, "extras": extras,
                "finish_reason": "length" if completion >= self.max_tokens else "stop",
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}}


def event(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=True)}\n\n"


class Reply:
    """The response's ids and shapes: chat.completion, or chat.completion.chunk events whose
    last one carries the sources (and usage, when stream_options asked for it)."""

    def __init__(self, model: str, include_usage: bool):
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        self.model, self.include_usage = model, include_usage

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def event(self, delta: dict, finish: str | None = None, **extra) -> str:
        return event({**self._head("chat.completion.chunk"),
                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                      **extra})

    def last_event(self, ask: Ask) -> str:
        done = ask.finish()
        extra = {} if done["sources"] is None else {"sources": done["sources"], **done["extras"]}
        if self.include_usage:
            extra["usage"] = done["usage"]
        return self.event({}, done["finish_reason"], **extra)

    def whole(self, ask: Ask) -> dict:
        done = ask.finish()
        body = {**self._head("chat.completion"),
                "choices": [{"index": 0, "finish_reason": done["finish_reason"],
                             "message": {"role": "assistant", "content": done["text"]}}],
                "usage": done["usage"]}
        if done["sources"] is not None:
            body.update(sources=done["sources"], **done["extras"])
        return body

    def error_event(self, exc: Exception) -> str:
        if isinstance(exc, HTTPException):
            message = str(exc.detail)
        elif isinstance(exc, StudioError):
            message = str(exc)
        else:
            log.exception("chat completion %s failed", self.id)
            message = f"the server failed while answering ({type(exc).__name__}); see its log"
        return event({"error": {"message": message, "type": "server_error", "code": None}})

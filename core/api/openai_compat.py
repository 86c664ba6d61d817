"""The OpenAI-compatible face of the Studio, so the `openai` client, LangChain and other tools
use it as they would any endpoint: `rag:<collection>` models answer from a collection (their
sources in an extra `sources` field), the local chat models answer plainly, embeddings come
from the Studio's embedding models, and /v1/search is retrieval alone.

Answers stream as OpenAI's server-sent events. A stream stops generating when its client goes
away: the model is checked between tokens, not after max_tokens of work nobody reads."""

from __future__ import annotations

import base64
import threading
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from core.api import chat
from core.api.gate import Gate, Ticket
from core.rag import store
from core.rag.embeddings import query_embedder
from core.rag.retrieval import SCORE_MEANING, RetrievalOptions, search
from core.registry import Registry
from core.settings import Settings

MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 100_000
MAX_TOKENS = 2048  # half the working context: the rest is for the prompt
MAX_INPUTS = 2048  # texts in one embeddings request, as OpenAI allows
MAX_INPUT_CHARS = 32_000
Method = Literal["dense", "bm25", "hybrid"]
Text = Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)]


class Part(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: Text | None = None


class Source(BaseModel):
    """A passage of an earlier answer, as this API returned it in `sources`."""
    model_config = ConfigDict(extra="ignore")
    rank: int = Field(ge=1)
    document: str = Field(max_length=1000)
    doc_id: str = Field("", max_length=300)
    page: int = 1
    chunk: int = 0
    chunk_id: str = Field("", max_length=300)
    start: int = 0
    end: int = 0
    text: Text = ""
    title: str = Field("", max_length=1000)
    section: str = Field("", max_length=1000)
    score: float = 0.0
    relevance: float = 0.0
    retriever: str = Field("", max_length=30)
    cited: bool = False


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[Part] | None = None
    # An assistant message may carry the `sources` its answer came with: a follow-up is then
    # searched first in the documents it cites, and "say that more simply" rewords it from
    # its own passages, as on the Chat page. OpenAI's clients send back only the text.
    sources: list[Source] | None = Field(None, max_length=50)

    def turn(self) -> dict:
        parts = [self.content] if isinstance(self.content, str) else self.content or []
        if any(not isinstance(p, str) and p.type != "text" for p in parts):
            raise HTTPException(400, "only text content is understood (no images or audio)")
        text = "".join(p if isinstance(p, str) else p.text or "" for p in parts)
        turn: dict = {"role": "system" if self.role == "developer" else self.role, "content": text}
        if self.role == "assistant" and self.sources:
            # as a saved conversation keeps an answer (core.rag.answers.Answer.to_json)
            turn["answer"] = {"answer": text, "cited": [s.rank for s in self.sources if s.cited],
                              "sources": [{**s.model_dump(exclude={"document", "cited"}),
                                           "doc": s.document} for s in self.sources]}
        return turn


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # temperature, user, …: accepted, not used
    model: str = Field(min_length=1, max_length=300)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: dict | None = None
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    # Retrieval for rag: models; the openai client sends them with extra_body.
    k: int = Field(5, ge=1, le=50)
    method: Method = "hybrid"


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: (Annotated[str, Field(max_length=MAX_INPUT_CHARS)]
            | Annotated[list[Annotated[str, Field(max_length=MAX_INPUT_CHARS)]],
                        Field(max_length=MAX_INPUTS)]
            | list[int] | list[list[int]])
    model: str | None = Field(None, max_length=300)
    encoding_format: Literal["float", "base64"] = "float"


class SearchRequest(BaseModel):
    question: str = Field(min_length=1, max_length=10_000)
    collection: str = Field(min_length=1, max_length=300)
    k: int = Field(5, ge=1, le=50)
    method: Method = "hybrid"
    mmr: bool = False
    rerank: bool = True  # ordered by calibrated relevance, as RetrievalOptions
    min_score: float = Field(0.0, ge=0, le=1)


def model_row(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "studio"}


def router(settings: Settings, gate: Gate) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @lru_cache(maxsize=1)
    def chroma():
        """Opened on first use: a Chroma server that is down must not stop classification."""
        return store.client(settings)

    def registry() -> Registry:
        return Registry.load(settings.registry_path, settings.models_dir)

    def collection(model: str) -> str:
        """A collection by name, with or without `rag:`; 404 naming the ones there are."""
        name = model.removeprefix(chat.RAG)
        known = [c.name for c in store.list_collections(chroma())]
        if name not in known:
            raise HTTPException(404, f"no collection named {name!r} (collections: "
                                     f"{', '.join(known) or 'none yet'})")
        return name

    def embedding_model(model: str | None) -> str:
        if not model:
            return settings.embedding_model
        if model.startswith(chat.RAG):
            found = store.get_collection(chroma(), collection(model))
            return store.describe(found).embedding_model
        found = registry()
        names = [s.name for s in found.with_role("embedding") if found.available(s.name)]
        if model not in names:
            raise HTTPException(404, f"no embedding model named {model!r} (models: "
                                     f"{', '.join(names) or 'none ready'}; or rag:COLLECTION)")
        return model

    @router.get("/models")
    def list_models() -> dict:
        found = registry()
        names = [f"{chat.RAG}{c.name}" for c in store.list_collections(chroma())]
        names += chat.chat_models(settings)
        # Adapters are not listed: no /v1 endpoint takes one (a chat request named
        # "adapter:NAME" was refused with 404); /predict and /adapters serve them.
        names += [s.name for s in found.with_role("embedding") if found.available(s.name)]
        return {"object": "list", "data": [model_row(n) for n in names]}

    @router.post("/chat/completions", response_model=None)
    async def chat_completions(body: ChatRequest, request: Request):
        turns = [m.turn() for m in body.messages if m.role != "tool"]
        if not any(t["role"] == "user" for t in turns):
            raise HTTPException(400, "the messages need at least one user message")
        rag = body.model.startswith(chat.RAG)
        name = await run_in_threadpool(collection, body.model) if rag else None
        if not rag and body.model not in await run_in_threadpool(chat.chat_models, settings):
            raise HTTPException(404, f"no model named {body.model!r}: GET /v1/models lists "
                                     "them (rag:COLLECTION answers from a collection)")
        engine = await run_in_threadpool(chat.engine_for, settings, None if rag else body.model)
        ask = chat.Ask(settings, chroma(), engine, turns, name,
                       body.max_completion_tokens or body.max_tokens or chat.DEFAULT_MAX_TOKENS,
                       RetrievalOptions(k=body.k, method=body.method), threading.Event())
        reply = chat.Reply(body.model, bool((body.stream_options or {}).get("include_usage")))
        ticket = gate.admit()
        if body.stream:
            return GatedStream(stream(ask, reply, request, ticket), ticket)
        async with ticket:
            await run_in_threadpool(ask.start)
            async for _ in tokens(ask, request):
                pass
            return await run_in_threadpool(reply.whole, ask)

    @router.post("/embeddings")
    def embeddings(body: EmbeddingRequest) -> dict:
        given = [body.input] if isinstance(body.input, str) else body.input
        texts = [t for t in given if isinstance(t, str)]
        if len(texts) < len(given):
            raise HTTPException(400, "send text, not token ids (LangChain: "
                                     "OpenAIEmbeddings(check_embedding_ctx_length=False))")
        model = embedding_model(body.model)
        embedder = query_embedder(settings, model)
        vectors = np.asarray(embedder.embed(texts) if texts else [], dtype="<f4")
        tokens = sum(len(t.split()) for t in texts)  # words: the usage is a rough guide
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": encoded(v, body)}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @router.post("/search")
    def search_only(body: SearchRequest) -> dict:
        options = RetrievalOptions(k=body.k, method=body.method, mmr=body.mmr,
                                   rerank=body.rerank, min_score=body.min_score)
        result = search(settings, collection(body.collection), body.question, options,
                        chroma())
        # By relevance unless rerank is off: a raw score of 1.0 can then come second.
        return {"object": "list", "method": result.method,
                "ordered_by": "relevance" if options.rerank else "score",
                "score_meaning": SCORE_MEANING[result.method],
                "ms": round(result.seconds * 1000, 1),
                "data": [chat.source(h) for h in result.hits]}

    return router


def encoded(vector: np.ndarray, body: EmbeddingRequest) -> list[float] | str:
    """The openai client asks for base64 (little-endian float32) unless told otherwise."""
    if body.encoding_format == "base64":
        return base64.b64encode(vector.tobytes()).decode()
    return vector.tolist()


async def tokens(ask: chat.Ask, request: Request) -> AsyncIterator[str]:
    """The answer's pieces, each fetched in a worker thread; the model is told to stop as soon
    as the client has gone, whether the loop ends there, on an error, or is closed."""
    pieces: Iterator[str] = ask.pieces()
    try:
        while not await request.is_disconnected():
            piece = await run_in_threadpool(next, pieces, None)
            if piece is None:
                return
            yield piece
    finally:
        ask.stop.set()


async def stream(ask: chat.Ask, reply: chat.Reply, request: Request,
                 ticket: Ticket) -> AsyncIterator[str]:
    async with ticket:
        try:
            await run_in_threadpool(ask.start)
            yield reply.event({"role": "assistant", "content": ""})
            async for piece in tokens(ask, request):
                yield reply.event({"content": piece})
            if not await request.is_disconnected():
                yield await run_in_threadpool(reply.last_event, ask)
        except Exception as exc:  # the status line has gone: the error travels as an event
            yield reply.error_event(exc)
    yield "data: [DONE]\n\n"


class GatedStream(StreamingResponse):
    """An event stream that gives its queue place back however it ends, also when the client
    left before the first byte and the body was never read."""

    def __init__(self, content: AsyncIterator[str], ticket: Ticket):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.ticket = ticket
        self.events = content

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.events.aclose()  # type: ignore[attr-defined]
            self.ticket.release()

"""The classification endpoints: classify text with an adapter (or few-shot with the base
model), list adapters.

Each model is loaded once and kept; requests take turns on it (a CPU runs one forward pass
well, not several at once), through a bounded queue (core.api.gate)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator

from core.api.gate import Gate
from core.lora import adapters
from core.lora.data import DataLimits
from core.settings import Settings

LIMITS = DataLimits()
MAX_EXAMPLES = 20
MAX_LOADED = 3  # classifiers kept in memory at once


def has_words(value: str) -> str:
    """Blank text is refused, as the Classify page refuses it: it was labelled anyway
    ("Distributor", 71%)."""
    if not value.strip():
        raise ValueError("the text is blank: only spaces or line breaks")
    return value


class PredictRequest(BaseModel):
    text: str = Field(min_length=1, max_length=LIMITS.max_text_chars,
                      description="The document's text.")
    adapter: str | None = Field(None, description="Adapter name; default: the newest adapter.")

    _text_has_words = field_validator("text")(has_words)


class Example(BaseModel):
    document: str = Field(min_length=1, max_length=LIMITS.max_text_chars)
    label: str = Field(min_length=1, max_length=200)

    _document_has_words = field_validator("document", "label")(has_words)


class FewShotRequest(PredictRequest):
    adapter: str | None = Field(None, description="Adapter name; default: the base model alone.")
    examples: list[Example] = Field(min_length=2, max_length=MAX_EXAMPLES,
                                    description="Labelled examples shown before the document; "
                                                "their labels are the label set.")


class Likeness(BaseModel):
    closest: float = Field(description="Cosine similarity of the text to the nearest document "
                                       "the adapter was trained on.")
    floor: float = Field(description="The adapter's floor: documents of the kind it was trained "
                                     "on came at least this close when it was tested.")
    other: float | None = Field(None, description="Cosine similarity to the nearest document "
                                                  "of another kind the Studio keeps for "
                                                  "comparison; null for a profile without them.")
    other_kind: str | None = Field(None, description="That document's kind (contracts, research "
                                                     "papers, Wikipedia articles).")
    lead_floor: float | None = Field(None, description="closest - other: documents of the kind "
                                                       "the adapter was trained on led by at "
                                                       "least this much when it was tested.")
    familiar: bool = Field(description="False: unlike the training documents (under the floor, "
                                       "or more like another kind), so the label is a guess.")


class Prediction(BaseModel):
    label: str
    scores: dict[str, float]
    adapter: str | None
    latency_ms: float
    truncated: bool
    likeness: Likeness | None = Field(
        None, description="How like the adapter's training documents the text is; null for the "
                          "base model alone and for adapters that keep no training profile.")


class Models:
    """Classifiers by adapter name (None: the base model alone), loaded on first use. Each one
    holds a base model in memory, so only the `keep` used last stay loaded: a client naming
    every adapter in turn cannot fill the server's memory."""

    def __init__(self, settings: Settings, keep: int = MAX_LOADED):
        self.settings, self.keep = settings, keep
        self.loaded: OrderedDict[str | None, object] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, adapter: str | None):
        with self.lock:
            if adapter not in self.loaded:
                self.loaded[adapter] = adapters.load_classifier(
                    self.settings.models_dir, adapter=adapter,
                    base=None if adapter else self.settings.lora_base_model)
            self.loaded.move_to_end(adapter)
            while len(self.loaded) > self.keep:
                self.loaded.popitem(last=False)  # a request still using it keeps its own ref
            return self.loaded[adapter]


def router(settings: Settings, gates: dict[str, Gate]) -> APIRouter:
    router = APIRouter()
    models = Models(settings)
    run_lock = threading.Lock()

    def known(name: str) -> str:
        try:
            return adapters.get(settings.models_dir, name).name
        except adapters.AdapterError as exc:
            raise HTTPException(404, str(exc)) from exc

    def newest() -> str:
        library = adapters.usable(adapters.list_adapters(settings.models_dir))
        if not library:
            raise HTTPException(404, "no adapters yet: train one in the Studio first")
        return max(library, key=lambda a: a.meta.created).name

    async def queued(adapter: str | None, text: str, **kw) -> Prediction:
        async with gates["classify"].admit():
            return await run_in_threadpool(run, adapter, text, **kw)

    def run(adapter: str | None, text: str, **kw) -> Prediction:
        try:
            classifier = models.get(adapter)
        except adapters.AdapterError as exc:
            raise HTTPException(422, str(exc)) from exc
        started = time.perf_counter()
        with run_lock:
            try:
                result = classifier.score(text, **kw)
            except ValueError as exc:  # too few labels, prompt that cannot fit
                raise HTTPException(422, str(exc)) from exc
        return Prediction(label=result.label, scores=result.scores, adapter=adapter,
                          truncated=result.truncated,
                          likeness=result.likeness.as_dict() if result.likeness else None,
                          latency_ms=round((time.perf_counter() - started) * 1000, 1))

    @router.get("/health")
    def health() -> dict:
        return {"status": "ok", "adapters": len(adapters.list_adapters(settings.models_dir)),
                "loaded": [name or "base" for name in models.loaded],
                "queues": {name: gate.status() for name, gate in gates.items()}}

    @router.get("/adapters")
    def list_adapters() -> list[dict]:
        return [a.summary() for a in adapters.list_adapters(settings.models_dir)]

    @router.post("/predict", response_model=Prediction)
    async def predict(request: PredictRequest) -> Prediction:
        return await queued(known(request.adapter) if request.adapter else newest(), request.text)

    @router.post("/predict_fewshot", response_model=Prediction)
    async def predict_fewshot(request: FewShotRequest) -> Prediction:
        labels = list(dict.fromkeys(e.label for e in request.examples))
        if len(labels) < 2:
            raise HTTPException(422, "the examples need at least two different labels")
        if len(labels) > LIMITS.max_labels:
            raise HTTPException(422, f"{len(labels)} labels is over the limit of "
                                     f"{LIMITS.max_labels}")
        adapter = known(request.adapter) if request.adapter else None
        return await queued(adapter, request.text, labels=labels,
                   examples=[(e.document, e.label) for e in request.examples])

    return router

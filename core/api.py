"""The REST API: classify text with an adapter (or few-shot with the base model), list adapters.
`python -m core api --host 127.0.0.1 --port 8000`; OpenAPI docs at /docs.

Each model is loaded once and kept; requests take turns on it (a CPU runs one forward pass
well, not several at once)."""

from __future__ import annotations

import json
import threading
import time

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from core.lora import adapters
from core.lora.data import DataLimits
from core.settings import Settings

LIMITS = DataLimits()
MAX_EXAMPLES = 20
MAX_ECHO = 200  # characters of a refused value that a 422 reply shows
SWAGGER_ASSETS = "/static/swagger-ui"


class PredictRequest(BaseModel):
    text: str = Field(min_length=1, max_length=LIMITS.max_text_chars,
                      description="The document's text.")
    adapter: str | None = Field(None, description="Adapter name; default: the newest adapter.")


class Example(BaseModel):
    document: str = Field(min_length=1, max_length=LIMITS.max_text_chars)
    label: str = Field(min_length=1, max_length=200)


class FewShotRequest(PredictRequest):
    adapter: str | None = Field(None, description="Adapter name; default: the base model alone.")
    examples: list[Example] = Field(min_length=2, max_length=MAX_EXAMPLES,
                                    description="Labelled examples shown before the document; "
                                                "their labels are the label set.")


class Prediction(BaseModel):
    label: str
    scores: dict[str, float]
    adapter: str | None
    latency_ms: float
    truncated: bool


class Models:
    """Classifiers by adapter name (None: the base model alone), loaded on first use."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.loaded: dict[str | None, object] = {}
        self.lock = threading.Lock()

    def get(self, adapter: str | None):
        with self.lock:
            if adapter not in self.loaded:
                self.loaded[adapter] = adapters.load_classifier(
                    self.settings.models_dir, adapter=adapter,
                    base=None if adapter else self.settings.lora_base_model)
            return self.loaded[adapter]


def create_app(settings: Settings) -> FastAPI:
    from swagger_ui_bundle import swagger_ui_path

    # FastAPI's /docs loads Swagger UI from a CDN (blank offline) and /redoc too: the docs are
    # served from the swagger-ui-bundle package's files instead, and there is no /redoc.
    app = FastAPI(title="RAG & LoRA Studio — classification API",
                  description="Classify documents with LoRA adapters trained in the Studio.",
                  docs_url=None, redoc_url=None)
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — docs",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon-32x32.png",
            # Swagger UI would otherwise send the spec to validator.swagger.io for a badge.
            swagger_ui_parameters={"validatorUrl": None})
    models = Models(settings)
    run_lock = threading.Lock()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """FastAPI's own handler echoes each refused value whole (a 10 MB text comes back as
        10 MB) and answers 500 when a value cannot be encoded as UTF-8 (a lone surrogate,
        "\\ud800"): here the echo is cut and the reply is ASCII JSON."""
        errors = [{"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg"),
                   "input": _echo(e.get("input"))} for e in exc.errors()]
        return Response(json.dumps({"detail": errors}, ensure_ascii=True, default=str),
                        status_code=422, media_type="application/json")

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
                          latency_ms=round((time.perf_counter() - started) * 1000, 1))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "adapters": len(adapters.list_adapters(settings.models_dir)),
                "loaded": [name or "base" for name in models.loaded]}

    @app.get("/adapters")
    def list_adapters() -> list[dict]:
        return [a.summary() for a in adapters.list_adapters(settings.models_dir)]

    @app.post("/predict", response_model=Prediction)
    def predict(request: PredictRequest) -> Prediction:
        return run(known(request.adapter) if request.adapter else newest(), request.text)

    @app.post("/predict_fewshot", response_model=Prediction)
    def predict_fewshot(request: FewShotRequest) -> Prediction:
        labels = list(dict.fromkeys(e.label for e in request.examples))
        if len(labels) < 2:
            raise HTTPException(422, "the examples need at least two different labels")
        if len(labels) > LIMITS.max_labels:
            raise HTTPException(422, f"{len(labels)} labels is over the limit of "
                                     f"{LIMITS.max_labels}")
        adapter = known(request.adapter) if request.adapter else None
        return run(adapter, request.text, labels=labels,
                   examples=[(e.document, e.label) for e in request.examples])

    return app


def _echo(value: object) -> object:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    if len(text) <= MAX_ECHO:
        return value
    return f"{text[:MAX_ECHO]}… ({len(text):,} characters)"


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


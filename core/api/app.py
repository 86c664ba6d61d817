"""The API server: `python -m core api --host 127.0.0.1 --port 8000`; OpenAPI docs at /docs."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from core.api import classify
from core.settings import Settings

MAX_ECHO = 200  # characters of a refused value that a 422 reply shows
SWAGGER_ASSETS = "/static/swagger-ui"


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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """FastAPI's own handler echoes each refused value whole (a 10 MB text comes back as
        10 MB) and answers 500 when a value cannot be encoded as UTF-8 (a lone surrogate,
        "\\ud800"): here the echo is cut and the reply is ASCII JSON."""
        errors = [{"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg"),
                   "input": _echo(e.get("input"))} for e in exc.errors()]
        return Response(json.dumps({"detail": errors}, ensure_ascii=True, default=str),
                        status_code=422, media_type="application/json")

    app.include_router(classify.router(settings))
    return app


def _echo(value: object) -> object:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    if len(text) <= MAX_ECHO:
        return value
    return f"{text[:MAX_ECHO]}… ({len(text):,} characters)"


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


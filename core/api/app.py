"""The API server: `python -m core api --host 127.0.0.1 --port 8000`; OpenAPI docs at /docs.
Classification with adapters (core.api.classify) and an OpenAI-compatible face under /v1
(core.api.openai_compat), behind API keys (core.api.auth) and bounded queues (core.api.gate)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from core.api import auth, classify, openai_compat
from core.api.gate import Gate
from core.errors import InputError, StudioError
from core.settings import Settings

MAX_ECHO = 200  # characters of a refused value that a 422 reply shows
MAX_BODY_BYTES = 16 * 1024 * 1024  # above the longest text a request may carry, JSON-escaped
SWAGGER_ASSETS = "/static/swagger-ui"
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                404: "not_found_error", 413: "invalid_request_error",
                422: "invalid_request_error", 429: "rate_limit_error"}
OPENAI_CODES = {401: "invalid_api_key", 404: "model_not_found", 413: "request_too_large",
                429: "queue_full"}


def create_app(settings: Settings) -> FastAPI:
    import fastapi_offline

    # FastAPI's /docs loads Swagger UI from a CDN (blank offline) and /redoc too: the docs are
    # served from the fastapi-offline package's copy of Swagger UI 5 instead (swagger-ui-bundle's
    # 4.15 could not read FastAPI's OpenAPI 3.1: "Unable to render this definition"), and
    # there is no /redoc.
    swagger_ui_path = Path(fastapi_offline.__file__).parent / "static"
    app = FastAPI(title="RAG & LoRA Studio API",
                  description="Classify documents with LoRA adapters trained in the Studio; "
                              "chat with collections, embed and search through an "
                              "OpenAI-compatible API under /v1.",
                  docs_url=None, redoc_url=None)
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — docs",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon.png",
            # Swagger UI would otherwise send the spec to validator.swagger.io for a badge.
            swagger_ui_parameters={"validatorUrl": None})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """FastAPI's own handler echoes each refused value whole (a 10 MB text comes back as
        10 MB) and answers 500 when a value cannot be encoded as UTF-8 (a lone surrogate,
        "\\ud800"): here the echo is cut and the reply is ASCII JSON. OpenAI's clients get
        their own error shape, one line per refused field and no echo."""
        if openai_path(request):
            message = "; ".join(_refused_field(e) for e in exc.errors())
            return error_response(request, 400, message)
        errors = [{"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg"),
                   "input": _echo(e.get("input"))} for e in exc.errors()]
        return Response(json.dumps({"detail": errors}, ensure_ascii=True, default=str),
                        status_code=422, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        return error_response(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(StudioError)
    async def studio_error(request: Request, exc: StudioError) -> Response:
        # Bad input is the caller's to fix; the rest (a model not prepared, Chroma gone) is
        # the server's.
        return error_response(request, 400 if isinstance(exc, InputError) else 503, str(exc))

    gates = {"chat": Gate("chat model", settings.api_queue),
             "classify": Gate("classifier", settings.api_queue)}
    keys = [Depends(auth.key_checker(auth.key_hashes(settings.api_keys)))]
    app.include_router(classify.router(settings, gates), dependencies=keys)
    app.include_router(openai_compat.router(settings, gates["chat"]), dependencies=keys)
    return app


def _refused_field(error: dict) -> str:
    """"messages.0.content: Field required"; for a body that is not JSON, where it stops being
    JSON (pydantic's location is the character: "1: JSON decode error" read as a field)."""
    if error.get("type") == "json_invalid":
        at = error.get("loc", ())[1:]
        return (f"the request body is not valid JSON ({error.get('ctx', {}).get('error', '')}"
                f"{f' at character {at[0]}' if at else ''})")
    return f"{'.'.join(map(str, error.get('loc', ())[1:])) or 'body'}: {error.get('msg')}"


def _path(request_or_scope) -> str:
    return request_or_scope["path"] if isinstance(request_or_scope, dict) \
        else request_or_scope.url.path


def openai_path(request_or_scope) -> bool:
    return _path(request_or_scope).startswith("/v1/")


def error_response(request_or_scope, status: int, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """OpenAI's error shape under /v1 (its clients read error.message), FastAPI's elsewhere."""
    if openai_path(request_or_scope):
        # /v1/search names a collection, not a model: its only 404 is a collection not found
        code = ("collection_not_found" if status == 404 and _path(request_or_scope) == "/v1/search"
                else OPENAI_CODES.get(status))
        body: dict = {"error": {"message": message, "type": OPENAI_TYPES.get(status,
                                                                             "server_error"),
                                "code": code}}
    else:
        body = {"detail": message}
    return Response(json.dumps(body, ensure_ascii=True), status_code=status, headers=headers,
                    media_type="application/json")


class BodyLimit:
    """Refuses a request body over `limit` bytes (413) before it is all in memory: at once when
    Content-Length says so, else as soon as the chunks read add up to more."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"the request body is over the limit of {self.limit // 1024 // 1024} MB"
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await error_response(scope, 413, message)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            got = await receive()
            seen += len(got.get("body", b""))
            if seen > self.limit:  # FastAPI passes an HTTPException from reading the body on
                raise HTTPException(413, message)
            return got

        return await self.app(scope, counted, send)


def _echo(value: object) -> object:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    if len(text) <= MAX_ECHO:
        return value
    return f"{text[:MAX_ECHO]}… ({len(text):,} characters)"


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    auth.check_exposure(host, auth.key_hashes(settings.api_keys))
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")

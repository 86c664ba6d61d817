"""Typed settings, read once from env, `.streamlit/secrets.toml` and the user's saved preferences.

Precedence, highest first: environment variable, secrets.toml, preferences saved from the
Settings page (``<data_dir>/preferences.json``), built-in default. Each value remembers where it
came from so the UI can say why a field cannot be changed there. Secrets are never written to
disk by this module: only fields marked ``user_editable`` reach the preferences file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from core import files
from core.errors import InputError
from core.registry import ModelState, Registry

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Models are local: without this, a Hugging Face model *name* retries the hub for ~78 s offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

Source = Literal["env", "secrets", "preferences", "default"]


DEFAULT_CHAT_MODEL = "qwen2.5-coder-0.5b-instruct"
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"
DEFAULT_LORA_BASE = "gemma-3-270m"
# How documents embed (core.rag.embeddings): "auto" takes the fastest this CPU has; the others
# pin one engine, to compare them on one machine (bench/ingest.py --engine) or rule one out.
EMBEDDING_ENGINES = ("auto", "torch-bf16", "torch-fp32", "onnx", "onnx-int8")


def _setting(env: str, help: str, *, secret: bool = False, user_editable: bool = False,
             choices: tuple[str, ...] | None = None, default: Any = None, label: str = "",
             group: str = "", role: str = "", kind: str = "",
             labels: dict[str, str] | None = None,
             applies_when: tuple[str, str] | None = None) -> Any:
    """A setting's one declaration: the environment variable, the help, and what the Settings
    page needs to draw it (label, group, the registry role whose models it offers, the
    choices and their labels, `kind="url"` for an address that must parse, and the
    (setting, value) it only matters with, such as the endpoint's model with that backend)."""
    return field(default=default, metadata={
        "env": env, "help": help, "secret": secret, "user_editable": user_editable,
        "choices": choices, "label": label, "group": group, "role": role, "kind": kind,
        "labels": labels or {}, "applies_when": applies_when,
    })


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _setting("STUDIO_DATA_DIR", "Uploads, Chroma collections, runs.",
                              default=PROJECT_ROOT / "data")
    models_dir: Path = _setting("STUDIO_MODELS_DIR", "Model registry, prepared models, adapters.",
                                default=PROJECT_ROOT / "models")
    chroma_host: str | None = _setting("CHROMA_HOST",
                                       "Chroma server host; embedded Chroma when unset.")
    chroma_port: int = _setting("CHROMA_PORT", "Chroma server port.", default=8000)
    tika_server_url: str | None = _setting(
        "TIKA_SERVER_URL", "Apache Tika server URL; native Tika (iscc-tika) when unset.",
        kind="url")
    ray_address: str | None = _setting(
        "RAY_ADDRESS", "Ray cluster (host:port of its head) to ingest on many machines; "
        "`ingest --ray` and the Documents page use it. Ray itself reads the same variable.")
    chat_backend: str = _setting(
        "STUDIO_CHAT_BACKEND", "Local runs the chat model on this machine; the endpoint can be "
        "vLLM, TGI, Ollama, a llama.cpp server or a hosted API.", user_editable=True,
        choices=("local", "openai"), default="local", label="Backend", group="Chat engine",
        labels={"local": "Local model (offline)", "openai": "OpenAI-compatible endpoint"})
    chat_model: str = _setting(
        "STUDIO_CHAT_MODEL", "Qwen2.5-Coder-0.5B is the default; the optional 1.5B declines "
        "unanswerable questions better at half the speed; SmolLM2-135M is faster and "
        "weaker.", user_editable=True, default=DEFAULT_CHAT_MODEL, label="Local chat model",
        group="Chat engine", role="chat", applies_when=("chat_backend", "local"))
    openai_base_url: str | None = _setting(
        "OPENAI_BASE_URL", "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1.",
        user_editable=True, label="Endpoint base URL", group="Chat engine", kind="url",
        applies_when=("chat_backend", "openai"))
    openai_model: str | None = _setting("OPENAI_MODEL", "Model name at that endpoint.",
                                        user_editable=True, label="Endpoint model",
                                        group="Chat engine",
                                        applies_when=("chat_backend", "openai"))
    openai_api_key: str | None = _setting("OPENAI_API_KEY", "API key for that endpoint.",
                                          secret=True)
    embedding_model: str = _setting(
        "STUDIO_EMBEDDING_MODEL", "Used to embed chunks and questions for new collections; a "
        "collection keeps the one it was built with. The optional all-mpnet-base-v2 is about "
        "4x slower to embed.", user_editable=True, default=DEFAULT_EMBEDDING_MODEL,
        label="Embedding model", group="Models", role="embedding")
    embedding_engine: str = _setting(
        "STUDIO_EMBEDDING_ENGINE", "How documents are embedded: auto takes the fastest measured "
        "(the ONNX export with int8 weights, when it has been made, else torch); the others "
        "pin one engine (torch-bf16 needs a CPU with AVX512-bf16 or AMX to be fast). "
        "Questions always embed with the ONNX export when there is one.",
        choices=EMBEDDING_ENGINES, default="auto")
    lora_base_model: str = _setting(
        "STUDIO_LORA_BASE_MODEL", "Gemma 3 270M is the default; SmolLM2-135M trains as fast "
        "with half the memory.", user_editable=True, default=DEFAULT_LORA_BASE,
        label="Default LoRA base model", group="Models", role="lora-base")
    api_keys: str | None = _setting(
        "STUDIO_API_KEYS", "Bearer keys the API server accepts, comma-separated; without any "
        "it serves this machine (127.0.0.1) only.", secret=True)
    api_queue: int = _setting(
        "STUDIO_API_QUEUE", "API requests that may wait for a model while one runs; more are "
        "answered HTTP 429.", default=4)
    sources: dict[str, Source] = field(default_factory=dict, compare=False, repr=False)

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def indexes_dir(self) -> Path:
        """Search indexes kept between processes (BM25 per collection revision)."""
        return self.data_dir / "indexes"

    @property
    def registry_path(self) -> Path:
        return self.models_dir / "registry.toml"

    @property
    def preferences_path(self) -> Path:
        return self.data_dir / "preferences.json"

    @property
    def last_used_path(self) -> Path:
        """What the user worked on last (the collection), to open it again: not a setting."""
        return self.data_dir / "last_used.json"

    def describe(self) -> list[dict[str, Any]]:
        """One row per setting for display: secrets masked, source named."""
        rows = []
        for f in setting_fields():
            value = getattr(self, f.name)
            shown = mask(value) if f.metadata["secret"] else ("" if value is None else str(value))
            rows.append({"setting": f.name, "env": f.metadata["env"], "value": shown,
                         "source": self.sources.get(f.name, "default"),
                         "help": f.metadata["help"]})
        return rows

    def __repr__(self) -> str:  # never leak the key into logs or tracebacks
        shown = ", ".join(f"{r['setting']}={r['value']!r}" for r in self.describe())
        return f"Settings({shown})"


def setting_fields():
    return [f for f in fields(Settings) if f.name != "sources"]


def mask(value: Any) -> str:
    if not value:
        return ""
    text = str(value)
    return "••••" + text[-4:] if len(text) > 8 else "••••"


def _coerce(name: str, raw: Any) -> Any:
    if raw is None or raw == "":
        return None
    kind = {f.name: f for f in setting_fields()}[name]
    default = kind.default
    if isinstance(default, Path):
        return Path(str(raw)).expanduser()
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise InputError(f"{kind.metadata['env']} must be a whole number, got {raw!r}") from None
    choices = kind.metadata["choices"]
    if choices and str(raw) not in choices:
        raise InputError(f"{kind.metadata['env']} must be one of {', '.join(choices)}, got {raw!r}")
    if kind.metadata["kind"] == "url":
        check_url(kind.metadata["env"], str(raw))
    return str(raw)


def check_url(what: str, url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InputError(f"{what}: {url[:100]!r} is not an http(s) address like "
                         "http://127.0.0.1:8080/v1")
    return url


def read_secrets(path: Path) -> dict[str, Any]:
    """Flat keys from secrets.toml; either the env name (OPENAI_API_KEY) or the field name."""
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {str(k).lower(): v for k, v in data.items() if not isinstance(v, dict)}


def load_settings(env: dict[str, str] | None = None,
                  secrets_path: Path | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    secrets = read_secrets(secrets_path or PROJECT_ROOT / ".streamlit" / "secrets.toml")
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}

    def pick(f, prefs: dict[str, Any]) -> None:
        env_name = f.metadata["env"]
        candidates: tuple[tuple[Source, Any], ...] = (
            ("env", env.get(env_name)),
            ("secrets", secrets.get(env_name.lower(), secrets.get(f.name))),
            ("preferences", prefs.get(f.name) if f.metadata["user_editable"] else None))
        for source, raw in candidates:
            value = _coerce(f.name, raw)
            if value is not None:
                values[f.name], sources[f.name] = value, source
                return

    by_name = {f.name: f for f in setting_fields()}
    # data_dir first: it says where the preferences file lives.
    pick(by_name["data_dir"], {})
    data_dir = values.get("data_dir", by_name["data_dir"].default)
    prefs = read_preferences(Path(data_dir) / "preferences.json")
    for f in setting_fields():
        if f.name != "data_dir":
            pick(f, prefs)
    return Settings(**values, sources=sources)


def endpoint_locked(settings: Settings) -> bool:
    """A key from the environment or secrets must never be sent to an address typed on a page:
    whoever set the key sets the URL."""
    return bool(settings.openai_api_key) and settings.sources.get("openai_api_key") in (
        "env", "secrets")


def model_choices(registry: Registry, role: str,
                  current: str) -> tuple[list[str], list[ModelState]]:
    """What a model chooser offers for `role`: the ready models (and the current choice,
    whatever its state, so saving never changes it unasked), and the optional models that an
    Install button could fetch (a damaged one too: installing again repairs it)."""
    states = [registry.state(spec) for spec in registry.with_role(role)]  # type: ignore[arg-type]
    ready = [m.name for m in states if m.status == "ready"]
    options = ready if current in ready else [current, *ready]
    return options, [m for m in states if m.optional and m.status != "ready"]


def locked(settings: Settings, name: str) -> bool:
    """Set outside the app (environment or secrets), so a page may show it but not change it."""
    if name == "openai_base_url" and endpoint_locked(settings):
        return True
    return settings.sources.get(name) in ("env", "secrets")


def editable_fields() -> list:
    return [f for f in setting_fields() if f.metadata["user_editable"]]


def _last_used(settings: Settings) -> dict[str, Any]:
    used = files.read_json(settings.last_used_path, {})
    return used if isinstance(used, dict) else {}  # edited by hand into something else


def last_used(settings: Settings, what: str) -> str | None:
    value = _last_used(settings).get(what)
    return value if isinstance(value, str) else None


def remember_last_used(settings: Settings, what: str, value: str) -> None:
    files.write_json(settings.last_used_path, {**_last_used(settings), what: value}, indent=2)


def read_preferences(path: Path) -> dict[str, Any]:
    return files.read_json(path, {})


def save_preferences(settings: Settings, changes: dict[str, Any]) -> None:
    """Persist user choices (never secrets); reload settings to see them."""
    editable = {f.name for f in editable_fields()}
    refused = set(changes) - editable
    if refused:
        raise InputError(f"not settable from the app: {', '.join(sorted(refused))}")
    for name, value in changes.items():
        _coerce(name, value)  # validate before anything is written
    if "openai_base_url" in changes and endpoint_locked(settings):
        raise InputError("the endpoint URL goes with its API key, which is set outside the "
                         "app: change OPENAI_BASE_URL where OPENAI_API_KEY is set")
    prefs = read_preferences(settings.preferences_path)
    prefs.update(changes)
    files.write_json(settings.preferences_path, dict(sorted(prefs.items())), indent=2)

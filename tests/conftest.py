import os
import sys
from pathlib import Path

import pytest

from core.rag.hits import Hit
from core.registry import linked_models_dir
from tests.servers import free_port, running

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
OUTPUT = ROOT / "test-output"
OUTPUT.mkdir(exist_ok=True)


@pytest.fixture
def studio_env(tmp_path, monkeypatch):
    """A private data dir and no outside configuration, as on a fresh machine."""
    data = tmp_path / "data"
    monkeypatch.setenv("STUDIO_DATA_DIR", str(data))
    for name in ("CHROMA_HOST", "CHROMA_PORT", "TIKA_SERVER_URL", "RAY_ADDRESS", "OPENAI_BASE_URL",
                 "OPENAI_API_KEY", "OPENAI_MODEL", "STUDIO_CHAT_BACKEND", "STUDIO_CHAT_MODEL",
                 "STUDIO_EMBEDDING_MODEL", "STUDIO_LORA_BASE_MODEL", "STUDIO_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return data


@pytest.fixture
def chroma_server(tmp_path):
    """A Chroma server (`chroma run`) on 127.0.0.1; yields its port."""
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    command = [str(chroma), "run", "--path", str(tmp_path / "server-db"), "--host", "127.0.0.1",
               "--port", str(port)]
    with running(command, f"http://127.0.0.1:{port}/api/v2/heartbeat", tmp_path / "chroma.log"):
        yield port


@pytest.fixture
def pip_sandbox(tmp_path, monkeypatch):
    """For `models install`: pip finds wheels only in `wheels` and installs into `site`, which
    this process and its children search for packages. No download, and the Studio's own
    environment is left as it was."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_TARGET", str(site))
    monkeypatch.setenv("PIP_UPGRADE", "1")  # else --target keeps a package it already holds
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT)]))
    monkeypatch.syspath_prepend(str(site))
    return wheels


@pytest.fixture
def models_env(tmp_path, monkeypatch):
    models = linked_models_dir(tmp_path / "models", ROOT / "models")
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models))
    return models


@pytest.fixture(scope="session")
def tiny_library(tmp_path_factory):
    from tests.tiny import tiny_adapter_library

    return tiny_adapter_library(tmp_path_factory.mktemp("library"))


def require_model(name: str) -> None:
    """Skip unless the optional model `name` is installed: `make test` installs it where the
    disk has room, and says so where it has not."""
    from core.registry import Registry
    from core.settings import load_settings

    settings = load_settings()
    if not Registry.load(settings.registry_path, settings.models_dir).available(name):
        pytest.skip(f"{name} is optional and not installed: `python -m core models install "
                    f"{name}`")


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A tiny random chat model behind the transformers engine (tests.tiny)."""
    from core.rag.llm import TransformersEngine
    from tests.tiny import tiny_causal_lm

    return TransformersEngine("tiny", tiny_causal_lm(tmp_path_factory.mktemp("m")))


def hit(rank: int, text: str) -> Hit:
    """A retrieved chunk of one page of its own document, for prompts and citations."""
    return Hit(rank=rank, score=1 / rank, doc="paper.pdf", page=rank, chunk_id=f"c{rank}",
               text=text, retriever="dense", doc_id=f"doc{rank}")



@pytest.fixture
def chat_env(studio_env, tmp_path, monkeypatch):
    """The sample paper in collection "samples", answered by a tiny random chat model."""
    from core.rag.ingest import ingest_files
    from core.samples import SAMPLE_PAPER
    from core.settings import load_settings
    from tests.tiny import tiny_causal_lm

    monkeypatch.setenv("STUDIO_CHAT_MODEL", str(tiny_causal_lm(tmp_path / "tiny-chat")))
    [result] = ingest_files(load_settings(), [SAMPLE_PAPER], "samples")
    assert result.status == "ok"
    return studio_env


def open_page(path: str):
    """A page (`app_pages/….py`) in AppTest, opened as a user opens it, from the app."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run()
    return at.switch_page(path).run()


def chat_page():
    at = open_page("app_pages/chat.py")
    assert not at.exception
    return at


def train_page():
    return open_page("app_pages/train.py")


def button(at, label: str):
    """The page's button of that label."""
    return next(b for b in at.button if b.label == label)


def markdown(at) -> str:
    """The page's Markdown, all of it."""
    return "\n".join(m.value for m in at.markdown)

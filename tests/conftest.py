import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
OUTPUT = ROOT / "test-output"
OUTPUT.mkdir(exist_ok=True)


@pytest.fixture
def studio_env(tmp_path, monkeypatch):
    """A private data dir and no outside configuration, as on a fresh machine."""
    data = tmp_path / "data"
    monkeypatch.setenv("STUDIO_DATA_DIR", str(data))
    for name in ("CHROMA_HOST", "CHROMA_PORT", "TIKA_SERVER_URL", "OPENAI_BASE_URL",
                 "OPENAI_API_KEY", "OPENAI_MODEL", "STUDIO_CHAT_BACKEND", "STUDIO_CHAT_MODEL",
                 "STUDIO_EMBEDDING_MODEL", "STUDIO_LORA_BASE_MODEL", "STUDIO_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return data


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path

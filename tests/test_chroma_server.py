"""The same ingestion and CLI against a real Chroma server started with `chroma run`."""

import json
import os
import subprocess
import sys

import pytest

from core.health import chroma_check
from core.rag.chunking import CHUNKING_VERSION
from core.samples import SAMPLE_PAPER
from core.settings import PROJECT_ROOT, load_settings

pytestmark = pytest.mark.slow


def test_ingest_and_list_over_http(studio_env, chroma_server, monkeypatch):
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(chroma_server))
    check = chroma_check(load_settings())
    assert check.ok and check.summary == f"server 127.0.0.1:{chroma_server}"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, env=os.environ.copy())

    first = cli("ingest", str(SAMPLE_PAPER), "--collection", "remote", "--json")
    assert first.returncode == 0, first.stderr
    chunks = json.loads(first.stdout.splitlines()[0])["chunks"]
    again = cli("ingest", str(SAMPLE_PAPER), "--collection", "remote", "--json")
    assert again.returncode == 0
    listed = [json.loads(line) for line in cli("collections", "list", "--json").stdout.splitlines()]
    assert listed == [{"name": "remote", "embedding_model": "all-minilm-l6-v2", "chunk_size": 500,
                       "chunk_overlap": 50, "chunks": chunks, "chunking_version": CHUNKING_VERSION}]
    assert not (studio_env / "chroma").exists()  # nothing went to the embedded store

"""The real default chat model (Qwen2.5-Coder-0.5B through llama.cpp) over a real paper."""

import json
import os
import subprocess
import sys

import pytest

from core.config import PROJECT_ROOT, load_settings
from core.ingest import ingest_files
from core.llm import get_engine
from core.rag import RagTurn
from core.samples import SAMPLE_PAPER

pytestmark = pytest.mark.slow


def test_default_model_answers_from_and_cites_retrieved_chunks(studio_env):
    settings = load_settings()
    ingest_files(settings, [SAMPLE_PAPER], "samples")
    engine = get_engine(settings)
    assert engine.name == "qwen2.5-coder-0.5b-instruct (llama.cpp)"
    turn = RagTurn(settings, "samples", "How can you detect overfitting?", engine,
                   max_new_tokens=160)
    text = "".join(turn.stream())
    answer = turn.result()
    assert text.strip() and answer.cited
    assert set(answer.cited) <= set(answer.used)
    cited_text = " ".join(h.text.lower() for h in answer.sources if h.rank in answer.cited)
    assert "overfit" in cited_text
    assert answer.timings["tokens_per_s"] and answer.timings["ttft_ms"]


def test_cli_ask_json(studio_env):
    ingest_files(load_settings(), [SAMPLE_PAPER], "samples")
    out = subprocess.run([sys.executable, "-m", "core", "ask", "What is tip 1 about?",
                          "--collection", "samples", "--max-tokens", "80", "--json"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env={**os.environ, "STUDIO_CHAT_MODEL": "smollm2-135m-instruct"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) >= {"answer", "sources", "cited", "timings"}
    assert result["answer"] and len(result["sources"]) == 5
    assert {"rank", "score", "doc", "page", "chunk_id", "text", "retriever"} <= set(result["sources"][0])

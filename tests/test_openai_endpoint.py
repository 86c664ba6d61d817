"""The OpenAI-compatible engine against a real server on 127.0.0.1: llama.cpp's own
(`python -m llama_cpp.server`) serving the light packaged model."""

import pytest

from core.rag.answers import RagTurn
from core.rag.ingest import ingest_files
from core.rag.llm import ChatError, OpenAIEngine
from core.samples import SAMPLE_PAPER
from core.settings import load_settings
from tests.servers import free_port, llama_server

pytestmark = pytest.mark.slow
KEY = "test-key-1234"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    port = free_port()
    with llama_server(port, KEY, tmp_path_factory.mktemp("srv") / "server.log"):
        yield f"http://127.0.0.1:{port}/v1"


def test_streams_a_grounded_answer(endpoint, studio_env):
    settings = load_settings()
    ingest_files(settings, [SAMPLE_PAPER], "samples")
    engine = OpenAIEngine(endpoint, "smollm", KEY)
    turn = RagTurn(settings, "samples", "What is overfitting?", engine, max_new_tokens=64)
    pieces = list(turn.stream())
    assert len(pieces) > 3  # streamed, not one block
    answer = turn.result()
    assert answer.text and answer.timings["ttft_ms"] is not None
    assert answer.engine == f"smollm at {endpoint}"


def test_wrong_key_wrong_model_and_no_server_are_named(endpoint):
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(ChatError, match="refused the API key"):
        list(OpenAIEngine(endpoint, "smollm", "wrong-key").stream(messages, 8))
    with pytest.raises(ChatError, match=r"does not serve the model 'gpt-9' \(it serves: smollm\)"):
        list(OpenAIEngine(endpoint, "gpt-9", KEY).stream(messages, 8))
    with pytest.raises(ChatError, match="could not reach the endpoint"):
        list(OpenAIEngine("http://127.0.0.1:9/v1", "smollm", KEY).stream(messages, 8))

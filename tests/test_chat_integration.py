"""The real default chat model (Qwen2.5-Coder-0.5B through llama.cpp) over a real paper."""

import json
import os
import subprocess
import sys

import pytest

from core.rag.answers import RagTurn
from core.rag.ingest import ingest_files
from core.rag.llm import get_engine
from core.rag.retrieval import DEFAULT_K
from core.samples import SAMPLE_PAPER
from core.settings import PROJECT_ROOT, load_settings

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
    assert text.strip() and answer.cited and not answer.citations_inferred
    assert set(answer.cited) <= set(answer.used)
    assert text.rstrip().endswith("]")  # the model marks each sentence, the last one too
    cited_text = " ".join(h.text.lower() for h in answer.sources if h.rank in answer.cited)
    assert "overfit" in cited_text
    assert answer.timings["tokens_per_s"] and answer.timings["ttft_ms"]


SAMPLE_PAPER_AUTHORS = (
    "Benjamin D. Lee", "Anthony Gitter", "Casey S. Greene", "Sebastian Raschka", "Finlay Maguire",
    "Alexander J. Titus", "Michael D. Kessler", "Alexandra J. Lee", "Marc G. Chevrette",
    "Paul Allen Stewart", "Thiago Britto-Borges", "Evan M. Cofer", "Kun-Hsing Yu",
    "Juan Jose Carmona", "Elana J. Fertig", "Alexandr A. Kalinin", "Brandon Signal",
    "Benjamin J. Lengerich", "Timothy J. Triche, Jr.", "Simina M. Boca")


def test_default_model_names_all_twenty_authors_of_the_sample_paper_and_where_one_works(
        studio_env):
    """The sample paper's title block runs over twelve chunks, each author with an ORCID iD
    and handles: given its opening alone, the 0.5B named the first of twenty."""
    settings = load_settings()
    ingest_files(settings, [SAMPLE_PAPER], "samples")
    engine = get_engine(settings)

    def ask(question: str) -> str:
        turn = RagTurn(settings, "samples", question, engine)
        return "".join(turn.stream())

    authors = ask("Who are the authors of the paper?")
    missing = [name for name in SAMPLE_PAPER_AUTHORS if name not in authors]
    assert not missing, authors
    assert "rasbt" not in authors and "0000-" not in authors
    assert "University of Wisconsin-Madison" in ask("Where does Sebastian Raschka work?")


def test_cli_ask_json(studio_env):
    ingest_files(load_settings(), [SAMPLE_PAPER], "samples")
    out = subprocess.run([sys.executable, "-m", "core", "ask", "What is tip 1 about?",
                          "--collection", "samples", "--max-tokens", "80", "--json"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env={**os.environ, "STUDIO_CHAT_MODEL": "smollm2-135m-instruct"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) >= {"answer", "sources", "cited", "timings"}
    assert result["answer"] and len(result["sources"]) == DEFAULT_K
    assert {"rank", "score", "doc", "page", "chunk_id", "text", "retriever"} <= set(result["sources"][0])


def test_llama_cpp_serves_one_generation_at_a_time(studio_env):
    """A Stop click followed at once by the next question puts two generations on one llama.cpp
    context (the stopped run is still reading its prompt); that aborted the whole process with
    a GGML_ASSERT. The second now waits for the first, which lets go at its stop."""
    import threading
    import time

    engine = get_engine(load_settings(), model="smollm2-135m-instruct")
    long_prompt = [{"role": "user", "content": "Write an essay on neural networks. " * 150}]
    stop = threading.Event()
    first: list[str] = []

    def read_and_stop() -> None:
        for piece in engine.stream(long_prompt, 200, stop):
            first.append(piece)
            if len(first) == 3:
                stop.set()

    reader = threading.Thread(target=read_and_stop)
    reader.start()
    time.sleep(0.3)  # the first one is reading its prompt (about 1,000 tokens)
    second = "".join(engine.stream([{"role": "user", "content": "Name three colours."}], 20))
    reader.join(timeout=120)
    assert second.strip() and 3 <= len(first) < 10
    assert not engine.lock.locked()

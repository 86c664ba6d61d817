"""Servers that go away mid-session: a Chroma server stopped and started again, an
OpenAI-compatible endpoint killed in the middle of an answer, a Tika server URL where nothing
answers. Each gives a plain message, keeps what the user had, and the next call after the
server is back works with the same cached client."""

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.errors import ServiceUnavailable, service_unavailable
from core.rag import store
from core.rag.chunking import chunk_pages
from core.settings import PROJECT_ROOT, load_settings
from tests.servers import free_port, llama_server, running

pytestmark = pytest.mark.slow
KEY = "test-key-1234"


def chroma_server(port: int, path: Path, log: Path):
    chroma = Path(sys.executable).with_name("chroma")
    command = [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    return running(command, f"http://127.0.0.1:{port}/api/v2/heartbeat", log)


def test_a_chroma_server_stopped_and_started_again(studio_env, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(port))
    database = tmp_path / "server-db"
    with chroma_server(port, database, tmp_path / "chroma-1.log"):
        chroma = store.client(load_settings())  # kept for the whole test, as the pages keep it
        collection = store.open_collection(chroma, "papers", "all-minilm-l6-v2", 500, 50)
        chunks = chunk_pages(["Generative adversarial networks train two models at once."])
        store.replace_document(collection, "doc", "gan.txt", chunks, [[0.1] * 384] * len(chunks), 100)
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120).run()
        at.switch_page("app_pages/documents.py").run()
        assert at.selectbox(key="collection").value == "papers" and not at.exception

    # Stopped: a plain message naming the server, from the core, the CLI and the page.
    with pytest.raises(Exception) as raised:
        store.list_collections(chroma)
    down = service_unavailable(raised.value)
    assert isinstance(down, ServiceUnavailable)
    assert f"the server at http://127.0.0.1:{port} did not answer" in str(down)
    cli = subprocess.run([sys.executable, "-m", "core", "collections", "list"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True)
    assert cli.returncode == 2 and f"http://127.0.0.1:{port} did not answer" in cli.stderr
    assert "Traceback" not in cli.stderr
    at.run()
    assert not at.exception
    assert any("did not answer" in w.value for w in at.warning)
    assert at.session_state["collection"] == "papers"
    at.run()  # a second run without the picker drawn keeps the choice too
    assert at.session_state["collection"] == "papers"

    # Back on the same port: the same client, and the same page session, work again.
    with chroma_server(port, database, tmp_path / "chroma-2.log"):
        assert [c.name for c in store.list_collections(chroma)] == ["papers"]
        at.run()
        assert not at.exception and not any("did not answer" in w.value for w in at.warning)
        assert at.selectbox(key="collection").value == "papers"
        assert list(at.dataframe[0].value["file"]) == ["gan.txt"]


def test_an_endpoint_killed_in_the_middle_of_an_answer(studio_env, tmp_path, monkeypatch):
    """The chat engine the pages cache (one per endpoint and model) streams an answer; the
    server is killed after a few pieces: a ChatError (which the Chat page shows with "Your
    conversation is kept"), and once the server is back the same engine answers again."""
    from core.rag.llm import ChatError, get_engine

    port = free_port()
    monkeypatch.setenv("STUDIO_CHAT_BACKEND", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_MODEL", "smollm")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    engine = get_engine(load_settings())
    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
    with llama_server(port, KEY, tmp_path / "llama-1.log") as server:
        pieces = engine.stream(messages, 400)
        first = [next(pieces) for _ in range(3)]
        server.kill()
        with pytest.raises(ChatError, match=f"the endpoint at http://127.0.0.1:{port}/v1 stopped "
                                            "answering in the middle of the answer"):
            list(pieces)
    assert "".join(first)
    with llama_server(port, KEY, tmp_path / "llama-2.log"):
        assert get_engine(load_settings()) is engine
        assert "".join(engine.stream([{"role": "user", "content": "Say hello."}], 8))


def test_a_tika_server_url_where_nothing_answers(studio_env, tmp_path, monkeypatch):
    """Nothing listens on the port: an HTML file is refused naming the server, the rest of the
    batch is stored (a PDF would be read by the pypdfium2 fallback). The Tika client keeps no
    connection, so a server that comes back is used by the next call."""
    from core.rag.ingest import ingest_files

    monkeypatch.setenv("TIKA_SERVER_URL", f"http://127.0.0.1:{free_port()}")
    page, notes = tmp_path / "page.html", tmp_path / "notes.txt"
    page.write_text("<html><body><p>Attention is all you need.</p></body></html>")
    notes.write_text("Plain text needs no Tika: it is stored while the server is away.")
    html, txt = ingest_files(load_settings(), [page, notes], "papers")
    assert html.status == "error"
    assert html.error.startswith(f"page.html: the Tika server at {load_settings().tika_server_url} "
                                 "did not answer")
    assert txt.status == "ok"
    collection = store.get_collection(store.client(load_settings()), "papers")
    assert [d["file"] for d in store.documents(collection)] == ["notes.txt"]

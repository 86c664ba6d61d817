"""AppTest for the Documents page with real Tika, MiniLM and embedded Chroma."""

import pytest
from streamlit.testing.v1 import AppTest

from core import store
from core.config import PROJECT_ROOT, load_settings
from core.samples import SAMPLE_PAPER


def documents_page() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    return at.switch_page("pages/documents.py").run()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_empty_data_dir_invites_a_first_collection(studio_env):
    at = documents_page()
    assert not at.exception
    assert any("No collections yet" in i.value for i in at.info)


@pytest.mark.slow
def test_create_upload_and_see_results_and_errors(studio_env):
    at = documents_page()
    at.text_input[0].set_value("papers")
    button(at, "Create").click().run()
    assert not at.exception
    assert at.selectbox(key="collection").value == "papers"

    at.file_uploader[0].set_value([
        ("../../escape attempt.pdf", SAMPLE_PAPER.read_bytes(), "application/pdf"),
        ("notes.pdf", b"just some words, not a PDF at all", "application/pdf"),
        ("empty.txt", b"", "text/plain"),
    ]).run()
    at.button(key="ingest").click().run()
    assert not at.exception
    table = at.dataframe[0].value  # the results table comes first
    status = dict(zip(table["file"], table["status"]))
    assert status["escape attempt.pdf"] == "ok"
    assert status["empty.txt"] == "error"
    assert status["notes.pdf"] == "ok"  # Tika reads content, not the name: plain text is fine
    assert "**2 of 3**" in "\n".join(m.value for m in at.markdown)
    errors = [e.value for e in at.error]
    assert any(e.startswith("empty.txt: the file is empty") for e in errors)
    saved = sorted(p.name for p in (studio_env / "uploads" / "papers").iterdir())
    assert "escape attempt.pdf" in saved and not (studio_env.parent / "escape attempt.pdf").exists()
    docs = at.dataframe(key="doc-table").value
    assert "escape attempt.pdf" in set(docs["file"])
    collection = store.get_collection(store.client(load_settings()), "papers")
    assert collection.count() == int(docs.loc[docs["file"] == "escape attempt.pdf", "chunks"].iloc[0]) + \
        int(docs.loc[docs["file"] != "escape attempt.pdf", "chunks"].sum())

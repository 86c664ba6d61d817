"""AppTest for the Documents page with real Tika, MiniLM and embedded Chroma."""

import pytest

from core.rag import store
from core.samples import SAMPLE_PAPER
from core.settings import load_settings
from tests.conftest import button, open_page
from tests.servers import free_port


def documents_page():
    return open_page("app_pages/documents.py")


def test_empty_data_dir_invites_a_first_collection(studio_env):
    at = documents_page()
    assert not at.exception
    assert any("No collections yet" in i.value for i in at.info)
    assert not (studio_env / "uploads" / "papers").exists()


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
    # a note in full below the table, not cut short in a column
    assert "note" not in table.columns
    assert [i.value for i in at.info if "not a PDF" in i.value] == [
        "notes.pdf: not a PDF: its content is text/plain, read as such"]
    assert not any(i.value.startswith("escape attempt.pdf") for i in at.info)
    assert "**2 of 3**" in "\n".join(m.value for m in at.markdown)
    assert not at.file_uploader[0].value  # emptied, so the files do not come back later
    errors = [e.value for e in at.error]
    assert any(e.startswith("empty.txt: the file is empty") for e in errors)
    saved = sorted(p.name for p in (studio_env / "uploads" / "papers").iterdir())
    assert "escape attempt.pdf" in saved and not (studio_env.parent / "escape attempt.pdf").exists()
    docs = at.dataframe[1].value
    assert set(docs["file"]) == {"escape attempt.pdf", "notes.pdf"}
    collection = store.get_collection(store.client(load_settings()), "papers")
    assert collection.count() == docs["chunks"].sum()

    # A PDF's characters are charted page by page; a text file is one long page, not charted
    at.selectbox(key="doc").set_value("notes.pdf").run()
    assert not at.get("plotly_chart")
    [where] = [c.value for c in at.caption if c.value.startswith("Chunk ")]
    assert "page" not in where
    # The chunk browser filters case-insensitively and shows plain text.
    at.selectbox(key="doc").set_value("escape attempt.pdf").run()
    assert at.get("plotly_chart")
    at.text_input(key="chunk-filter").set_value("QUICK TIPS").run()
    assert "Ten Quick Tips" in at.text[0].value
    at.text_input(key="chunk-filter").set_value("no such words anywhere").run()
    assert any("No chunk of escape attempt.pdf contains" in i.value for i in at.info)

    # A collection chunked by an older version offers to re-index it, and is current after
    from core.rag.chunking import CHUNKING_VERSION

    store.update_metadata(collection, chunking_version=CHUNKING_VERSION - 1)
    at.run()
    assert any("older version of the Studio" in w.value for w in at.warning)
    at.button(key="reindex-collection").click().run()
    assert not at.exception
    assert not any("older version of the Studio" in w.value for w in at.warning)
    collection = store.get_collection(store.client(load_settings()), "papers")
    assert store.describe(collection).chunking_version == CHUNKING_VERSION

    # Delete one document: its chunks go, the other stays.
    at.selectbox(key="doc").set_value("notes.pdf").run()
    assert at.button(key="delete-doc").label == "Delete notes.pdf"  # in a popover that asks first
    at.button(key="delete-doc").click().run()
    assert not at.exception
    assert set(at.dataframe[1].value["file"]) == {"escape attempt.pdf"}
    assert not (studio_env / "uploads" / "papers" / "notes.pdf").exists()
    assert collection.count() == int(docs.loc[docs["file"] == "escape attempt.pdf", "chunks"].iloc[0])

    # Delete the collection only after confirming.
    assert button(at, "Delete collection").disabled
    next(c for c in at.checkbox if c.label.startswith("Yes, delete 'papers'")).check().run()
    button(at, "Delete collection").click().run()
    assert any("No collections yet" in i.value for i in at.info)
    assert not (studio_env / "uploads" / "papers").exists()


def test_uploads_go_to_a_ray_cluster_only_when_one_is_configured(studio_env, monkeypatch):
    store.open_collection(store.client(load_settings()), "papers", "all-minilm-l6-v2", 500, 50)
    assert "on-cluster" not in [t.key for t in documents_page().toggle]

    address = f"127.0.0.1:{free_port()}"  # where no cluster answers
    monkeypatch.setenv("RAY_ADDRESS", address)
    at = documents_page()
    at.toggle(key="on-cluster").set_value(True)
    at.file_uploader[0].set_value([("notes.txt", b"some words", "text/plain")]).run()
    at.button(key="ingest").click().run()
    assert not at.exception
    assert any(e.value.startswith(f"no Ray cluster answers at {address}") for e in at.error)


@pytest.mark.slow
def test_a_scanned_pdf_is_read_with_ocr_when_asked(studio_env, tmp_path):
    import pypdfium2

    from core.rag.extract import ocr_available
    from tests.conftest import shared

    if not ocr_available():
        pytest.skip("tesseract is not installed (make test installs it)")
    scanned = pypdfium2.PdfDocument(str(shared("documents", "2106.09685v2_pages1-2_image-only.pdf")))
    page = pypdfium2.PdfDocument.new()
    page.import_pages(scanned, [0])
    page.save(str(tmp_path / "scan.pdf"))
    store.open_collection(store.client(load_settings()), "scans", "all-minilm-l6-v2", 500, 50)
    at = documents_page()
    next(t for t in at.toggle if t.label == "Read scanned pages with OCR").set_value(True)
    at.file_uploader[0].set_value([("scan.pdf", (tmp_path / "scan.pdf").read_bytes(),
                                    "application/pdf")]).run()
    at.button(key="ingest").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["status"]) == ["ok"] and list(table["extractor"]) == ["tika + OCR (1 page)"]

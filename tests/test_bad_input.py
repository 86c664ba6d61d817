"""Each kind of bad input gets a message naming the file and the problem, and nothing is lost."""

import sys
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from core.rag import store
from core.rag.extract import ExtractionError, extract
from core.rag.ingest import ingest_files
from core.samples import SAMPLE_PAPER
from core.settings import load_settings
from core.uploads import max_upload_bytes
from tests.conftest import shared


def test_truncated_pdf(tmp_path):
    data = SAMPLE_PAPER.read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ExtractionError, match=r"damaged or incomplete \(truncated\?\)"):
        extract(cut)


def test_aes_encrypted_pdf_is_reported_not_returned_empty(tmp_path):
    writer = PdfWriter(clone_from=SAMPLE_PAPER)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    locked = tmp_path / "locked.pdf"
    writer.write(locked)
    with pytest.raises(ExtractionError, match="encrypted"):
        extract(locked)


def test_a_file_that_is_not_what_its_name_says_is_read_with_a_note(tmp_path):
    """A text file named .docx is read as text (Tika reads content, not names), and says so."""
    fake = tmp_path / "notes.docx"
    fake.write_text("hello")
    read = extract(fake)
    assert read.text.strip() == "hello"
    assert read.note == "not a Word document: its content is text/plain, read as such"
    for real in ("square-one_offer-letter.docx", "square-one_offer-letter.html"):
        assert extract(shared("documents", real)).note is None


def test_windows_1252_text_keeps_its_characters(tmp_path):
    text = "Le café était très chaud. Œuvre naïve, garçon — “déjà vu”."
    path = tmp_path / "notes.txt"
    path.write_bytes(text.encode("cp1252"))
    result = extract(path)
    assert result.text == text and result.extractor == "text (cp1252)"
    path.write_bytes(text.encode("utf-8"))
    assert extract(path).extractor == "text (utf-8)"


def test_a_program_named_pdf_is_said_to_be_what_it_is_not_a_scan(tmp_path):
    """It was "no text layer (scanned?); try again with OCR"."""
    program = tmp_path / "invoice.pdf"
    program.write_bytes(Path(sys.executable).resolve().read_bytes()[:200_000])
    with pytest.raises(ExtractionError, match=r"^not a PDF: its content is application/\S+, "
                                              r"with no text in it$"):
        extract(program)


@pytest.mark.slow
def test_batch_with_every_kind_of_trouble(studio_env, tmp_path):
    """One batch: bad files fail with their reasons, good ones are stored, twins once."""
    settings = load_settings()
    image_only = shared("documents", "2106.09685v2_pages1-2_image-only.pdf")
    twin = tmp_path / "copy of paper.pdf"
    twin.write_bytes(SAMPLE_PAPER.read_bytes())
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    too_big = tmp_path / "huge.txt"
    with too_big.open("wb") as fh:
        fh.truncate(max_upload_bytes() + 1)
    results = ingest_files(settings, [empty, SAMPLE_PAPER, image_only, too_big, twin], "mixed")
    by_file = {r.file: r for r in results}
    assert by_file["empty.pdf"].error == "empty.pdf: the file is empty (0 bytes)"
    assert "no text layer (scanned?)" in by_file[image_only.name].error
    assert by_file["huge.txt"].error.startswith("huge.txt: ") and "upload limit" in \
        by_file["huge.txt"].error
    assert by_file[SAMPLE_PAPER.name].status == "ok"
    assert by_file["copy of paper.pdf"].status == "ok"
    assert "stored once" in by_file["copy of paper.pdf"].note
    collection = store.get_collection(store.client(settings), "mixed")
    docs = store.documents(collection)
    assert len(docs) == 1 and collection.count() == by_file[SAMPLE_PAPER.name].chunks


@pytest.mark.slow
def test_store_failure_mid_batch_keeps_the_collection_whole(studio_env, tmp_path, monkeypatch):
    """A Chroma write failing half-way through a document (a fault we cannot provoke for real)
    leaves the previous version of that document and every other file intact."""
    settings = load_settings()
    gan = shared("papers", "1406.2661_GAN.pdf")
    [first] = ingest_files(settings, [SAMPLE_PAPER], "safe")
    collection = store.get_collection(store.client(settings), "safe")
    before = collection.count()

    real_replace = store.replace_document

    def fail_on_second_batch(collection, doc_id, file_name, chunks, embeddings, batch_size,
                             ocr_pages):
        calls = {"n": 0}
        real_add = collection.add

        def add(**kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("disk full")
            return real_add(**kwargs)

        monkeypatch.setattr(collection, "add", add)
        try:
            real_replace(collection, doc_id, file_name, chunks, embeddings, 50, ocr_pages)
        finally:
            monkeypatch.setattr(collection, "add", real_add)

    monkeypatch.setattr(store, "replace_document", fail_on_second_batch)
    results = ingest_files(settings, [SAMPLE_PAPER, gan], "safe")
    assert [r.status for r in results] == ["error", "error"]
    assert "could not be stored in Chroma (disk full); the collection is unchanged" in \
        results[0].error
    monkeypatch.setattr(store, "replace_document", real_replace)
    collection = store.get_collection(store.client(settings), "safe")
    assert collection.count() == before == first.chunks
    assert [d["file"] for d in store.documents(collection)] == [SAMPLE_PAPER.name]
    [ok] = ingest_files(settings, [gan], "safe")
    assert ok.status == "ok"


@pytest.mark.slow
def test_300_page_pdf(studio_env, tmp_path):
    source = PdfReader(shared("papers", "2106.09685v2.pdf"))
    writer = PdfWriter()
    while len(writer.pages) < 300:
        for page in source.pages:
            if len(writer.pages) < 300:
                writer.add_page(page)
    big = tmp_path / "lora x12.pdf"
    writer.write(big)
    [result] = ingest_files(load_settings(), [big], "big")
    assert result.status == "ok" and result.pages == 300
    assert result.chunks > 2000


@pytest.mark.slow
def test_ocr_reads_image_only_pdf_when_asked(tmp_path):
    import difflib
    import re

    from core.rag.extract import ocr_available

    if not ocr_available():
        pytest.skip("tesseract is not installed (make test installs it)")
    scanned = shared("documents", "2106.09685v2_pages1-2_image-only.pdf")
    truth = re.findall(r"\w+", shared("documents", "2106.09685v2_pages1-2_groundtruth.txt")
                       .read_text().lower())
    with pytest.raises(ExtractionError, match="try again with OCR"):
        extract(scanned)
    read = []
    result = extract(scanned, ocr=True, on_ocr_page=lambda done, pages: read.append((done, pages)))
    assert result.extractor == "tika + OCR (2 pages)" and len(result.pages) == 2
    assert read == [(0, 2), (1, 2), (2, 2)] and result.ocr_pages == {1, 2}
    words = re.findall(r"\w+", result.text.lower())
    assert difflib.SequenceMatcher(None, truth, words, autojunk=False).ratio() > 0.8


@pytest.mark.slow
def test_a_scanned_page_ocr_cannot_read_leaves_the_others(monkeypatch):
    """A fault OCR gives rarely (a page past its timeout): the page stays empty and is named."""
    from core.rag import extract as extraction
    from core.rag.extract import ocr_available

    if not ocr_available():
        pytest.skip("tesseract is not installed (make test installs it)")
    real = extraction._tika_native

    def second_page_fails(path, ocr):
        if path.name == "page-2.pdf":
            raise ExtractionError("Tika could not read it (timeout)")
        return real(path, ocr)

    monkeypatch.setattr(extraction, "_tika_native", second_page_fails)
    result = extract(shared("documents", "2106.09685v2_pages1-2_image-only.pdf"), ocr=True)
    assert result.ocr_pages == {1} and result.extractor == "tika + OCR (1 page)"
    assert "LoRA" in result.pages[0] and not result.pages[1].strip()
    assert result.note == "OCR could not read page(s) 2"


def test_unreachable_tika_server_is_named_and_pdfs_fall_back(tmp_path):
    """No Tika server can run here (its jar is not on our registries), so only the failure
    path is exercised for real: a port where nothing listens."""
    docx = shared("documents", "deep-rules_manuscript.docx")
    url = "http://127.0.0.1:9"
    with pytest.raises(ExtractionError, match=r"the Tika server at http://127.0.0.1:9 did not answer"):
        extract(docx, tika_url=url)
    result = extract(SAMPLE_PAPER, tika_url=url)
    assert result.extractor == "pypdfium2" and len(result.pages) == 25

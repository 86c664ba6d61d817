"""A passage in its page: the highlights on a rendered PDF page cover the passage's own words
(read back by pypdfium2 from under each highlight), and other formats show the span."""

from dataclasses import dataclass
from pathlib import Path
from shutil import copyfile

import pypdfium2
import pytest

from core.rag import store
from core.rag.ingest import ingest_files
from core.rag.page_view import fold, show_page
from core.settings import load_settings
from core.uploads import upload_folder
from tests.conftest import SHARED_DATA, shared

pytestmark = pytest.mark.slow
# Every shared paper; without the shared data, one name for `shared` to skip on.
PAPERS = sorted(p.name for p in (SHARED_DATA / "papers").glob("*.pdf")) or ["1406.2661_GAN.pdf"]


@dataclass
class Stored:
    doc_id: str
    doc: str
    page: int
    start: int
    end: int
    text: str


def kept_and_ingested(settings, source: Path, collection: str) -> Path:
    """As the Documents page does it: the original kept in the upload folder, then indexed."""
    kept = upload_folder(settings.data_dir, collection) / source.name
    kept.parent.mkdir(parents=True, exist_ok=True)
    copyfile(source, kept)
    [result] = ingest_files(settings, [kept], collection)
    assert result.status == "ok", result.error
    return kept


def passages(collection, file: str) -> list[Stored]:
    [doc] = [d for d in store.documents(collection) if d["file"] == file]
    return [Stored(doc["doc_id"], file, r["page"], r["start"], r["end"], r["text"])
            for r in store.chunks_of(collection, doc["doc_id"])]


def under_highlights(pdf: Path, page: int, boxes) -> str:
    """What pypdfium2 itself reads from inside each highlight box."""
    document = pypdfium2.PdfDocument(str(pdf))
    try:
        textpage = document[page - 1].get_textpage()
        return " ".join(textpage.get_text_bounded(*box) for box in boxes)
    finally:
        document.close()


@pytest.mark.parametrize("paper", PAPERS)
def test_highlights_cover_the_passage_and_little_else(studio_env, paper):
    settings = load_settings()
    pdf = kept_and_ingested(settings, shared("papers", paper), "papers")
    collection = store.get_collection(store.client(settings), "papers")
    chunks = passages(collection, paper)
    covered = []
    for passage in chunks:
        view = show_page(settings.data_dir, collection, passage)
        assert view.page == passage.page and view.image is not None
        assert len(view.rects) == len(view.boxes)
        width, height = view.image.size
        assert all(0 <= left <= right <= width and 0 <= top <= bottom <= height
                   for left, top, right, bottom in view.rects)
        under = fold(under_highlights(pdf, passage.page, view.boxes))
        words = [w for w in map(fold, passage.text.split()) if w]
        share = sum(w in under for w in words) / len(words) if words else 1.0
        extra = len(under) / max(len(fold(passage.text)), 1)
        covered.append(share >= 0.9 and extra <= 1.2)
        if len(words) >= 40 and passage.page == 2:  # prose: always found, whole
            assert share >= 0.95 and extra <= 1.1, passage.text
    # Only text inside figures, read in another order by Tika, may go unfound.
    assert sum(covered) >= 0.95 * len(chunks), f"{sum(covered)} of {len(chunks)}"


def test_other_pages_and_the_cache(studio_env):
    settings = load_settings()
    kept_and_ingested(settings, shared("papers", "1406.2661_GAN.pdf"), "papers")
    collection = store.get_collection(store.client(settings), "papers")
    passage = next(p for p in passages(collection, "1406.2661_GAN.pdf") if p.page == 2)
    view = show_page(settings.data_dir, collection, passage)
    assert view.highlighted and view.pages == 9
    assert show_page(settings.data_dir, collection, passage).image is view.image  # cached
    before = show_page(settings.data_dir, collection, passage, page=1)
    assert before.page == 1 and before.image is not None and not before.highlighted
    assert show_page(settings.data_dir, collection, passage, page=99).page == 9
    # the passage with the lines around it, where a tall page put it below the fold
    around = view.around_passage()
    assert around.width == view.image.width and around.height < 0.8 * view.image.height
    top, bottom = min(r[1] for r in view.rects), max(r[3] for r in view.rects)
    assert around.height >= bottom - top and before.around_passage() is None


def test_text_documents_show_the_span(studio_env, tmp_path):
    settings = load_settings()
    note = tmp_path / "notes.txt"
    note.write_text("Overfitting\n\nA model overfits when it learns the noise of its training "
                    "data. " * 90)
    kept_and_ingested(settings, note, "notes")
    collection = store.get_collection(store.client(settings), "notes")
    for passage in passages(collection, "notes.txt"):
        view = show_page(settings.data_dir, collection, passage)
        assert view.image is None and view.span == (passage.start, passage.end)
        assert view.text[passage.start:passage.end] == passage.text and not view.note
        # shown at first with the paragraphs around it, not from the top of one long page
        text, (start, end) = view.text_around()
        assert text[start:end] == passage.text and len(text) < len(view.text) / 2


def test_a_pdf_without_its_original_shows_its_text(studio_env):
    settings = load_settings()
    gan = shared("papers", "1406.2661_GAN.pdf")
    [result] = ingest_files(settings, [gan], "cli")  # as `python -m core ingest` does: not kept
    assert result.status == "ok"
    collection = store.get_collection(store.client(settings), "cli")
    passage = passages(collection, gan.name)[3]
    view = show_page(settings.data_dir, collection, passage)
    assert view.image is None and "not kept" in view.note
    assert view.text[passage.start:passage.end] == passage.text
    store.delete_document(collection, passage.doc_id)  # an older answer's source, since gone
    gone = show_page(settings.data_dir, collection, passage)
    assert gone.image is None and gone.text == "" and "no longer" in gone.note


def test_a_scanned_page_says_why_the_passage_is_not_marked(studio_env):
    from core.rag.extract import ocr_available

    if not ocr_available():
        pytest.skip("tesseract is not installed (make test installs it)")
    settings = load_settings()
    scanned = upload_folder(settings.data_dir, "scans") / "lora-scan.pdf"
    scanned.parent.mkdir(parents=True, exist_ok=True)
    copyfile(shared("documents", "2106.09685v2_pages1-2_image-only.pdf"), scanned)
    [result] = ingest_files(settings, [scanned], "scans", ocr=True)
    assert result.status == "ok", result.error
    collection = store.get_collection(store.client(settings), "scans")
    view = show_page(settings.data_dir, collection, passages(collection, scanned.name)[2])
    # the page is shown; its text came from OCR, so there is nothing to mark the passage on
    assert view.image is not None and not view.rects and "scanned image" in view.note

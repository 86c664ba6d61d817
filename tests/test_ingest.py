"""Real Tika, real MiniLM, real embedded Chroma: the pieces the sample loader stands on."""

import pytest

from core.errors import InputError
from core.rag import store
from core.rag.chunking import chunk_pages
from core.rag.extract import ExtractionError, extract, split_pages
from core.rag.ingest import ingest_files
from core.rag.layout import normalise
from core.samples import SAMPLE_PAPER
from core.settings import load_settings
from tests.conftest import require_model, shared


def test_normalise_joins_hyphens_and_collapses_space():
    assert normalise("deep learn-\ning  is\u00a0 ﬁne\r\n\n\n\nnext") == "deep learning is fine\n\nnext"


def test_split_pages_from_tika_xhtml():
    xhtml = ('<html><head><title>t</title></head><body><div class="page"><p>one</p></div>'
             '<div class="page"><p>two <b>bold</b></p><div>inner</div></div></body></html>')
    assert [p.split() for p in split_pages(xhtml)] == [["one"], ["two", "bold", "inner"]]


def test_chunks_carry_page_and_span():
    pages = ["a" * 30 + " " + "b" * 30, "c" * 10]
    chunks = chunk_pages(pages, chunk_size=40, chunk_overlap=5)
    assert [c.page for c in chunks] == [1, 1, 2]
    assert [c.index for c in chunks] == [0, 1, 2]
    for c in chunks:
        assert pages[c.page - 1][c.start:c.end] == c.text
    with pytest.raises(ValueError, match="overlap"):
        chunk_pages(pages, chunk_size=10, chunk_overlap=10)


def test_pages_rebuilt_from_chunks_keep_their_paragraph_breaks():
    """The page dialog of a web page, .docx or text file shows the text rebuilt from chunks:
    a heading that opens a chunk was run on at the end of the paragraph before it."""
    from core.rag.store import page_texts

    for source in (SAMPLE_PAPER, shared("documents", "deep-rules_manuscript.html")):
        extracted = extract(source)
        chunks = chunk_pages(extracted.pages, 500, 50, extracted.title)
        rebuilt = page_texts([{"page": c.page, "start": c.start, "text": c.text} for c in chunks])
        differing = sum(a != b for page, text in rebuilt.items()
                        for a, b in zip(text, extracted.pages[page - 1]))
        assert differing <= 2, source  # a line break between two chunks comes back as a space
        assert "accurately.\n\nTip 1: Decide" in rebuilt[1 if source.suffix == ".html" else 4]


def test_tika_pages_of_sample_paper():
    result = extract(SAMPLE_PAPER)
    assert result.extractor == "tika" and len(result.pages) == 25
    assert result.pages[0].startswith("Ten Quick Tips for Deep Learning in Biology")


def test_image_only_and_empty_files_say_why(tmp_path):
    with pytest.raises(ExtractionError, match=r"no text layer \(scanned\?\)"):
        extract(shared("documents", "2106.09685v2_pages1-2_image-only.pdf"))
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(ExtractionError, match="empty"):
        extract(empty)


@pytest.mark.slow
def test_ingest_is_idempotent_and_a_bad_file_does_not_stop_the_batch(studio_env, tmp_path):
    settings = load_settings()
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    stages = []
    results = ingest_files(settings, [bad, SAMPLE_PAPER], "papers",
                           on_stage=lambda p, s: stages.append((p.name, s)))
    assert [r.status for r in results] == ["error", "ok"]
    assert results[0].error.startswith("broken.pdf: ")
    assert ("deep-rules_manuscript.pdf", "store") in stages
    first = results[1].chunks
    assert first > 100 and results[1].pages == 25
    again = ingest_files(settings, [SAMPLE_PAPER], "papers")
    collection = store.client(settings).get_collection("papers")
    assert collection.count() == first == again[0].chunks
    metas = collection.get(include=["metadatas"])["metadatas"]
    assert {"doc_id", "file", "page", "chunk", "start", "end"} <= set(metas[0])
    # each of the paper's ten tips is a section of its own, under its heading
    tips = {m["section"].split(":")[0] for m in metas if m["section"].startswith("Tip ")}
    assert tips == {f"Tip {n}" for n in range(1, 11)}
    # the same paper as a Word file is stored, with a note that it seems to be there already
    [docx] = ingest_files(settings, [shared("documents", "deep-rules_manuscript.docx")], "papers")
    assert docx.status == "ok" and docx.note.startswith(
        "deep-rules_manuscript.pdf has the same title"), docx.note
    # and its passages do not take the places of others: one opening for the authors, not two
    from core.rag.retrieval import search

    found = search(settings, "papers", "Who are the authors?")
    assert found.placed and [h.chunk for h in found.hits] == [0]
    assert collection.metadata["embedding_model"] == "all-minilm-l6-v2"


@pytest.mark.slow
def test_cli_ingest_walks_folders_and_reports_failures(studio_env, tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    from core.settings import PROJECT_ROOT

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(SAMPLE_PAPER, folder / "sub" / "paper.pdf")
    (folder / "notes.txt").write_text("Transformers use attention. " * 40)
    (folder / "empty.pdf").write_bytes(b"")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT,
                              capture_output=True, text=True)

    out = cli("ingest", str(folder), "--collection", "cli", "--chunk-size", "300",
              "--chunk-overlap", "30", "--json")
    assert out.returncode == 1, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    by_file = {row["file"]: row for row in lines[:-1]}
    assert by_file["empty.pdf"]["status"] == "error" and "empty" in by_file["empty.pdf"]["error"]
    assert by_file["paper.pdf"]["status"] == "ok" and by_file["paper.pdf"]["pages"] == 25
    assert by_file["notes.txt"]["status"] == "ok" and by_file["notes.txt"]["extractor"] == "text (utf-8)"
    assert lines[-1]["summary"] == {"files": 3, "ok": 2, "failed": 1, "collection": "cli"}

    shown = json.loads(cli("collections", "show", "cli", "--json").stdout)
    assert shown["chunk_size"] == 300
    assert {d["file"] for d in shown["documents"]} == {"paper.pdf", "notes.txt"}
    listed = [json.loads(line) for line in cli("collections", "list", "--json").stdout.splitlines()]
    assert [c["name"] for c in listed] == ["cli"]
    assert cli("collections", "delete", "cli").returncode == 0
    missing = cli("collections", "show", "cli")
    assert missing.returncode == 2 and "no collection named 'cli'" in missing.stderr


def test_collection_keeps_its_embedding_model_and_refuses_another(studio_env):
    settings = load_settings()
    chroma = store.client(settings)
    created = store.open_collection(chroma, "pets", "all-minilm-l6-v2", 500, 50)
    assert created.configuration["hnsw"]["space"] == "cosine"
    created.add(ids=["a", "b"], documents=["cats purr softly", "stock markets fell sharply"])
    reopened = store.get_collection(store.client(settings), "pets")
    hits = reopened.query(query_texts=["a kitten"], n_results=2)["ids"][0]
    assert hits == ["a", "b"]  # embedded by the collection's own model, offline
    with pytest.raises(store.StoreError, match="built with all-minilm-l6-v2; it cannot be used"):
        store.open_collection(chroma, "pets", "another-model", 500, 50)
    with pytest.raises(InputError, match="collection name '../x'"):
        store.open_collection(chroma, "../x", "all-minilm-l6-v2", 500, 50)


def test_lost_ligatures_are_put_back():
    from core.rag.layout import repair_ligatures

    broken = "di\ufffderent e\ufffdective \ufffdrst over\ufffdtting shu\ufffeed"
    assert repair_ligatures(broken) == "different effective first overfitting shuffled"
    text = extract(SAMPLE_PAPER).text
    assert "\ufffd" not in text and "overfitting" in text


def test_reads_page_through_large_collections(studio_env, monkeypatch):
    """Chroma refuses to read ~100k rows at once; every whole-collection read pages."""
    settings = load_settings()
    chroma = store.client(settings)
    collection = store.open_collection(chroma, "paged", "all-minilm-l6-v2", 500, 50)
    collection.add(ids=[f"c{i}" for i in range(23)], embeddings=[[1.0] + [0.0] * 383] * 23,
                   documents=[f"text {i}" for i in range(23)],
                   metadatas=[{"doc_id": "d", "file": "f.txt", "page": 1, "chunk": i, "start": 0,
                               "end": 1} for i in range(23)])
    monkeypatch.setattr(store, "PAGE", 5)
    assert store.documents(collection) == [{"file": "f.txt", "doc_id": "d", "chunks": 23,
                                            "pages": 1, "ocr": False, "labels": [],
                                            "label_p": None}]
    assert [c["chunk"] for c in store.chunks_of(collection, "d")] == list(range(23))
    assert store.delete_document(collection, "d") == 23 and collection.count() == 0


@pytest.mark.slow
def test_reindex_upgrades_an_old_collection_without_losing_documents(studio_env):
    from core.rag.chunking import CHUNKING_VERSION
    from core.rag.ingest import reindex
    from core.uploads import save_upload, upload_folder

    settings = load_settings()
    folder = upload_folder(settings.data_dir, "old")
    bert = save_upload(folder, "bert.pdf", shared("papers", "1810.04805_BERT.pdf").read_bytes())
    notes = save_upload(folder, "notes.txt", b"Attention is all you need.\n\n" * 30)
    fresh = {r.file: r for r in ingest_files(settings, [bert, notes], "old")}
    collection = store.get_collection(store.client(settings), "old")
    # As a version-1 collection looks: no chunking version, chunks without title or section.
    store.update_metadata(collection, chunking_version=1)
    store.replace_document(collection, fresh["bert.pdf"].doc_id, "bert.pdf",
                           chunk_pages(["old short chunk one", "old chunk two"]),
                           [[1.0] + [0.0] * 383] * 2, batch_size=100)
    notes.unlink()  # an original that is gone keeps its chunks, and the collection stays old
    before = {d["doc_id"]: d["chunks"] for d in store.documents(collection)}
    results = {r.file: r for r in reindex(settings, "old")}
    assert results["bert.pdf"].status == "ok" and results["notes.txt"].status == "error"
    assert "no longer in" in results["notes.txt"].error
    collection = store.get_collection(store.client(settings), "old")
    after = {d["doc_id"]: d["chunks"] for d in store.documents(collection)}
    assert set(after) == set(before)
    assert after[fresh["notes.txt"].doc_id] == before[fresh["notes.txt"].doc_id]
    assert after[fresh["bert.pdf"].doc_id] == fresh["bert.pdf"].chunks
    assert store.describe(collection).outdated

    save_upload(folder, "notes.txt", b"Attention is all you need.\n\n" * 30)
    assert all(r.status == "ok" for r in reindex(settings, "old"))
    info = store.describe(store.get_collection(store.client(settings), "old"))
    assert not info.outdated and info.chunking_version == CHUNKING_VERSION
    assert info.chunks == sum(r.chunks for r in fresh.values())
    rows = store.chunks_of(collection, fresh["bert.pdf"].doc_id)
    assert rows[0]["title"].startswith("BERT: Pre-training")
    assert any(r["section"] == "3.1 Pre-training BERT" for r in rows)


def test_ocr_reads_the_pages_tika_counts_as_scanned():
    from core.rag.extract import _scanned_pages

    counts = {"pdf:charsPerPage": ["2370", "0", "9", "400"],
              "pdf:unmappedUnicodeCharsPerPage": ["0", "0", "0", "41"]}
    pages = ["text " * 500, "", "a few", "text " * 80]
    assert _scanned_pages(counts, pages) == [1, 2, 3]  # few characters, or over 10% unmapped
    assert _scanned_pages({}, pages) == [1, 2]  # no counts to go by: the text's own length


def test_progress_moves_within_a_stage():
    from pathlib import Path

    from core.rag.ingest import BatchProgress, ocr_page_label

    tracker = BatchProgress([Path("a.pdf"), Path("b.pdf")])
    assert tracker.update(Path("a.pdf"), "embed")[0] == pytest.approx(0.225)
    assert tracker.update(Path("b.pdf"), "extract")[0] == 0.5
    # half the scanned pages of b read: OCR is nearly all of a scanned file's time
    assert tracker.update(Path("b.pdf"), "extract", 0.5)[0] == pytest.approx(0.7375)
    assert tracker.update(Path("b.pdf"), "store")[0] == pytest.approx(0.995)
    assert ocr_page_label(0, 3) == "Reading scanned page 1 of 3 with OCR (seconds a page)"
    assert ocr_page_label(3, 3).startswith("Reading scanned page 3 of 3")


@pytest.mark.slow
def test_scanned_pages_are_read_one_by_one_and_again_by_a_reindex(studio_env, tmp_path,
                                                                  capsys):
    """A PDF of a text page and a scanned one, ingested by the CLI: OCR reads the scanned page
    alone, says so as it goes, and the chunks of that page are marked, so a re-index reads it
    with OCR again."""
    import json

    import pypdfium2

    from core.cli import main
    from core.rag.extract import ocr_available
    from core.rag.ingest import reindex
    from core.uploads import upload_folder

    if not ocr_available():
        pytest.skip("tesseract is not installed (make test installs it)")
    settings = load_settings()
    mixed = tmp_path / "mixed.pdf"
    out = pypdfium2.PdfDocument.new()
    for source in (SAMPLE_PAPER, shared("documents", "2106.09685v2_pages1-2_image-only.pdf")):
        pdf = pypdfium2.PdfDocument(str(source))
        out.import_pages(pdf, [0])
        pdf.close()
    out.save(str(mixed))
    out.close()

    assert main(["ingest", str(mixed), "--collection", "scans", "--ocr", "--json"]) == 0
    shown = capsys.readouterr()
    result = json.loads(shown.out.splitlines()[0])
    assert result["status"] == "ok" and result["extractor"] == "tika + OCR (1 page)"
    # the page being read, then the count, rewritten in place on stderr
    assert shown.err == ("\rmixed.pdf: Reading scanned page 1 of 1 with OCR (seconds a page)"
                         "\rmixed.pdf: 1 scanned page read with OCR\n")
    collection = store.get_collection(store.client(settings), "scans")
    [doc] = store.documents(collection)
    assert doc["ocr"] and doc["pages"] == 2
    rows = store.chunks_of(collection, doc["doc_id"])
    assert {(r["page"], r["ocr"]) for r in rows} == {(1, False), (2, True)}
    assert any("LoRA" in r["text"] for r in rows if r["page"] == 2)

    # a scanned original not yet stored (a batch stopped halfway) has no text without OCR
    scan = upload_folder(settings.data_dir, "scans") / "scan.pdf"
    out = pypdfium2.PdfDocument.new()
    pdf = pypdfium2.PdfDocument(str(mixed))
    out.import_pages(pdf, [1])
    pdf.close()
    out.save(str(scan))
    out.close()
    store.update_metadata(collection, chunking_version=1)
    read = []
    results = {r.file: r for r in reindex(
        settings, "scans", on_ocr_page=lambda path, done, pages: read.append((path.name, done)))}
    assert {f: r.status for f, r in results.items()} == {"mixed.pdf": "ok", "scan.pdf": "ok"}
    assert sorted(read) == [("mixed.pdf", 0), ("mixed.pdf", 1), ("scan.pdf", 0), ("scan.pdf", 1)]
    collection = store.get_collection(store.client(settings), "scans")
    rows = store.chunks_of(collection, doc["doc_id"])
    assert any("LoRA" in r["text"] for r in rows if r["page"] == 2)
    assert all(d["ocr"] for d in store.documents(collection))
    assert not store.describe(collection).outdated


def test_each_collection_is_embedded_and_searched_with_its_own_model(studio_env, tmp_path,
                                                                     monkeypatch):
    """When the default embedding model changes, a MiniLM collection keeps taking documents and
    questions in MiniLM (384-d), and one built with mpnet in mpnet (768-d): a vector of the
    other size would be refused by Chroma."""
    from core.rag.retrieval import RetrievalOptions, search

    require_model("all-mpnet-base-v2")
    settings = load_settings()
    notes, more = tmp_path / "notes.txt", tmp_path / "more.txt"
    notes.write_text("Cats purr when they are content. " * 30)
    more.write_text("Stock markets fell sharply on Monday. " * 30)
    [first] = ingest_files(settings, [notes], "mini")
    monkeypatch.setenv("STUDIO_EMBEDDING_MODEL", "all-mpnet-base-v2")
    settings = load_settings()
    [second] = ingest_files(settings, [more], "mini")  # added in MiniLM, not the new default
    [third] = ingest_files(settings, [notes], "mpnet")
    assert [first.status, second.status, third.status] == ["ok", "ok", "ok"]
    chroma = store.client(settings)
    assert {c.name: c.embedding_model for c in store.list_collections(chroma)} == {
        "mini": "all-minilm-l6-v2", "mpnet": "all-mpnet-base-v2"}
    for name, dim in (("mini", 384), ("mpnet", 768)):
        stored = store.get_collection(chroma, name).get(include=["embeddings"], limit=1)
        assert len(stored["embeddings"][0]) == dim
        hits = search(settings, name, "a purring cat", RetrievalOptions(k=1, method="dense"),
                      chroma=chroma).hits
        assert "Cats purr" in hits[0].text
    monkeypatch.delenv("STUDIO_EMBEDDING_MODEL")
    hits = search(load_settings(), "mpnet", "a purring cat", RetrievalOptions(k=1, method="dense"),
                  chroma=chroma).hits
    assert "Cats purr" in hits[0].text

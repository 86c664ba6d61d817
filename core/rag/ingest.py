"""Documents into a collection: extract → chunk → embed → store, one file at a time, each file
succeeding or failing on its own; and a collection rebuilt from its kept originals."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from core.errors import StudioError
from core.files import DiskFull, check_room, disk_full
from core.rag import store
from core.rag.chunking import CHUNKING_VERSION, DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Chunk, chunk_pages
from core.rag.embeddings import AnyEmbedder, get_embedder
from core.rag.extract import NO_TEXT_LAYER, ExtractionError, extract, ocr_available
from core.settings import Settings
from core.uploads import UploadError, check_size, forget_uploads, upload_folder

Stage = str  # "extract" | "chunk" | "embed" | "store"
StageFn = Callable[[Path, Stage], None]
FileOcrPageFn = Callable[[Path, int, int], None]  # a file, its scanned pages read so far, in all


@dataclass
class FileResult:
    file: str
    status: str  # "ok" | "error"
    pages: int = 0
    chars: int = 0
    chunks: int = 0
    seconds: float = 0.0
    extractor: str | None = None
    doc_id: str | None = None
    error: str | None = None
    note: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


class StoreFailure(StudioError):
    pass


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def ingest_files(settings: Settings, paths: list[Path], collection_name: str,
                 chunk_size: int = DEFAULT_CHUNK_SIZE,
                 chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
                 on_stage: StageFn = lambda path, stage: None,
                 ocr: bool = False,
                 on_ocr_page: FileOcrPageFn = lambda path, done, pages: None) -> list[FileResult]:
    if not settings.chroma_host:
        try:
            check_room(settings.chroma_dir)
        except DiskFull as exc:  # nothing is opened: Chroma on a full disk can hang
            return [FileResult(Path(p).name, "error", error=str(store_failure(Path(p).name, exc)))
                    for p in paths]
    chroma = store.client(settings)
    # Documents added to an existing collection embed with the model it was built with, even
    # after the default changed; a new collection takes the default.
    embedder = get_embedder(settings, store.built_with(chroma, collection_name))
    collection = store.open_collection(chroma, collection_name, embedder.model_name,
                                       chunk_size, chunk_overlap)
    batch = chroma.get_max_batch_size()
    results: list[FileResult] = []
    stored: dict[str, FileResult] = {}  # by doc_id: the same bytes are stored once per batch
    for path in paths:
        path = Path(path)
        started = time.perf_counter()
        result = FileResult(file=path.name, status="error")
        try:
            check_size(path.name, path.stat().st_size)
            result.doc_id = doc_id = file_sha256(path)
            if doc_id in stored:
                result = same_content(stored[doc_id], path.name)
                continue
            doc = prepare_document(path, doc_id, embedder, chunk_size, chunk_overlap, ocr,
                                   settings.tika_server_url, on_stage, on_ocr_page)
            on_stage(path, "store")
            store_document(settings, collection, doc, batch, result)
            stored[doc_id] = result
        except FILE_ERRORS as exc:
            result.error = failure(path.name, exc)
        finally:
            result.seconds = round(time.perf_counter() - started, 3)
            results.append(result)
    return results


@dataclass
class PreparedDocument:
    """One file extracted, chunked and embedded: all that storing it needs. Picklable, so a
    Ray worker can prepare it and the driver store it (core/rag/ingest_ray.py)."""

    file: str
    doc_id: str
    pages: int
    chars: int
    extractor: str
    chunks: list[Chunk]
    vectors: list[list[float]]
    seconds: float
    note: str | None = None
    ocr_pages: frozenset[int] = frozenset()


def prepare_document(path: Path, doc_id: str, embedder: AnyEmbedder, chunk_size: int,
                     chunk_overlap: int, ocr: bool, tika_url: str | None,
                     on_stage: StageFn = lambda path, stage: None,
                     on_ocr_page: FileOcrPageFn = lambda path, done, pages: None
                     ) -> PreparedDocument:
    started = time.perf_counter()
    on_stage(path, "extract")
    extracted = extract(path, ocr=ocr, tika_url=tika_url,
                        on_ocr_page=lambda done, pages: on_ocr_page(path, done, pages))
    on_stage(path, "chunk")
    chunks = chunk_pages(extracted.pages, chunk_size, chunk_overlap, extracted.title)
    on_stage(path, "embed")
    vectors = embedder.embed([c.embedded_text for c in chunks])
    return PreparedDocument(path.name, doc_id, len(extracted.pages), extracted.chars,
                            extracted.extractor, chunks, vectors,
                            time.perf_counter() - started, extracted.note, extracted.ocr_pages)


def store_document(settings: Settings, collection, doc: PreparedDocument, batch: int,
                   result: FileResult) -> None:
    """Write a prepared document whole (or not at all) and record it in `result`."""
    result.pages, result.chars, result.extractor = doc.pages, doc.chars, doc.extractor
    twin = _titled_alike(collection, doc)
    result.note = "; ".join(note for note in (doc.note, twin and (
        f"{twin} has the same title: if it is the same document in another format, one of them "
        "is enough")) if note) or None
    try:
        if not settings.chroma_host:  # its text and vectors, several times over (SQLite, index)
            check_room(settings.chroma_dir, 4 * sum(len(c.text.encode()) + 4 * len(v)
                                                    for c, v in zip(doc.chunks, doc.vectors)))
        store.replace_document(collection, doc.doc_id, doc.file, doc.chunks, doc.vectors, batch,
                               doc.ocr_pages)
    except Exception as exc:  # the store's errors differ embedded and over HTTP
        full = None if settings.chroma_host else disk_full(exc, settings.chroma_dir)
        raise store_failure(doc.file, full or exc) from exc
    result.chunks, result.status = len(doc.chunks), "ok"


def _titled_alike(collection, doc: PreparedDocument) -> str | None:
    """The file name of another document of the collection with the same title as `doc`: the
    sample paper uploaded again as a web page went in unremarked, and its passages came twice."""
    title = doc.chunks[0].title if doc.chunks else ""
    if not title:
        return None
    found = collection.get(where={"$and": [{"title": title}, {"doc_id": {"$ne": doc.doc_id}},
                                           {"file": {"$ne": doc.file}}]},
                           limit=1, include=["metadatas"])["metadatas"]
    return found[0]["file"] if found else None


def store_failure(file: str, why: Exception) -> StoreFailure:
    return StoreFailure(f"{file}: could not be stored in Chroma ({why}); the collection is "
                        "unchanged")


def same_content(twin: FileResult, file: str) -> FileResult:
    return replace(twin, file=file, note=f"same content as {twin.file}: stored once")


# What fails one file and not the batch; anything else is a bug.
FILE_ERRORS = (ExtractionError, UploadError, StoreFailure, OSError)


def failure(file: str, exc: Exception) -> str:
    """A file's error line, for one of FILE_ERRORS."""
    if isinstance(exc, ExtractionError):
        return f"{file}: {exc}"
    if isinstance(exc, OSError):
        return f"{file}: could not be read ({exc.strerror or exc})"
    return str(exc)


def reindex(settings: Settings, collection_name: str,
            on_stage: StageFn = lambda path, stage: None,
            on_ocr_page: FileOcrPageFn = lambda path, done, pages: None) -> list[FileResult]:
    """Every document of a collection chunked again from its kept original (data/uploads/),
    each replacing its own chunks whole, so nothing is lost on the way: a document whose
    original is gone or has changed keeps its chunks and is reported. Kept originals not yet
    stored (`unstored_originals`) are stored. A document OCR read is read with OCR again, and
    so is one with no text layer (stored before OCR was recorded, or not yet stored), where
    tesseract is installed. The collection is marked with today's chunking version once every
    document was rebuilt."""
    chroma = store.client(settings)
    collection = store.get_collection(chroma, collection_name)
    info = store.describe(collection)
    folder = upload_folder(settings.data_dir, collection_name)
    sources: list[Path] = []
    scanned: list[Path] = []
    missing: list[FileResult] = []
    for doc in store.documents(collection):
        path = folder / doc["file"]
        if not path.is_file():
            missing.append(FileResult(doc["file"], "error", doc_id=doc["doc_id"],
                                      error=f"{doc['file']}: the original is no longer in "
                                            f"{folder}; its chunks are kept as they were"))
        elif file_sha256(path) != doc["doc_id"]:
            missing.append(FileResult(doc["file"], "error", doc_id=doc["doc_id"],
                                      error=f"{doc['file']}: the kept original differs from the "
                                            "stored document; its chunks are kept as they were"))
        else:
            (scanned if doc["ocr"] else sources).append(path)
    sources += unstored_originals(settings, collection)

    def read(paths: list[Path], ocr: bool) -> list[FileResult]:
        return ingest_files(settings, paths, collection_name, info.chunk_size, info.chunk_overlap,
                            on_stage, ocr, on_ocr_page) if paths else []

    results = read(sources, False)
    if ocr_available():
        unread = {r.file for r in results if NO_TEXT_LAYER in (r.error or "")}
        results = [r for r in results if r.file not in unread]
        scanned += [path for path in sources if path.name in unread]
    results += read(scanned, True)
    if all(r.status == "ok" for r in results) and not missing:
        store.update_metadata(store.get_collection(chroma, collection_name),
                              chunking_version=CHUNKING_VERSION)
    return results + missing


def unstored_originals(settings: Settings, collection) -> list[Path]:
    """Kept originals whose content is in no document of the collection: a batch stopped (a
    crash, `kill -9`, a closed tab) after keeping its files and before storing them all. The
    folder and the collection agree when this is empty and every document has its original;
    re-running the batch, or a re-index, stores them."""
    folder = upload_folder(settings.data_dir, collection.name)
    if not folder.is_dir():
        return []
    stored = {doc["doc_id"] for doc in store.documents(collection)}
    # Hidden names are writes in progress (core/files.py), or left by one that was killed.
    return [path for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".") and file_sha256(path) not in stored]


def drop_failed_originals(settings: Settings, collection_name: str, kept: list[Path],
                          results: list[FileResult]) -> None:
    """After a batch of kept originals (`ingest_files`' paths, its results in the same order):
    remove each that failed and whose content no document holds, so that only a batch stopped
    halfway leaves originals without documents. Kept when the collection cannot be read."""
    failed = [path for path, result in zip(kept, results) if result.status != "ok"]
    if not failed:
        return
    try:
        collection = store.get_collection(store.client(settings), collection_name)
        stored = {doc["doc_id"] for doc in store.documents(collection)}
    except Exception:  # the store is away: better an original too many than one too few
        return
    for path in failed:
        if path.is_file() and file_sha256(path) not in stored:
            path.unlink()


def remove_document(settings: Settings, collection, doc: dict) -> int:
    """A document (a row of `store.documents`) out of the collection with its kept original;
    the number of chunks removed. The original goes first: a crash in between leaves a listed
    document to delete again, not an original that would be stored again as unfinished."""
    forget_uploads(settings.data_dir, collection.name, doc["file"])
    return store.delete_document(collection, doc["doc_id"])


# How far into one file each stage starts; extraction and embedding dominate. A file whose
# scanned pages OCR reads (seconds a page) spends almost all its time extracting: with the
# first split, a 2-page scan said "about 44 s left" with 14 s to go.
STAGE_START = {"extract": 0.0, "chunk": 0.4, "embed": 0.45, "store": 0.9}
OCR_STAGE_START = {"extract": 0.0, "chunk": 0.95, "embed": 0.96, "store": 0.99}
_STAGE_LABELS = {"extract": "Extracting text with Tika", "chunk": "Splitting into chunks",
                 "embed": "Embedding chunks", "store": "Storing in Chroma"}


def stage_label(stage: Stage, ocr: bool = False) -> str:
    """What a stage is doing, for a progress line: with OCR, extracting is the slow part (a
    scanned page takes seconds), and a bare "extract" beside an empty bar looked stuck."""
    if stage == "extract" and ocr:
        return "Extracting text with Tika, and reading scanned pages with OCR (seconds a page)"
    return _STAGE_LABELS[stage]


def ocr_page_label(done: int, pages: int) -> str:
    """The progress line while OCR reads a file's scanned pages (`done` of `pages` read)."""
    return f"Reading scanned page {min(done + 1, pages)} of {pages} with OCR (seconds a page)"


@dataclass
class BatchProgress:
    """Fraction done and time left over a batch, for progress bars."""

    files: list[Path]
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = time.perf_counter()
        self._index = {Path(p): i for i, p in enumerate(self.files)}
        self._scanned: set[Path] = set()

    def update(self, path: Path, stage: Stage, ocr_read: float | None = None
               ) -> tuple[float, float | None]:
        """At the start of the stage `stage` of the file at `path`, or `ocr_read` (0 to 1) of
        the way through its scanned pages."""
        if ocr_read is not None:
            self._scanned.add(Path(path))
        starts = OCR_STAGE_START if Path(path) in self._scanned else STAGE_START
        done = (self._index[Path(path)] + starts[stage]
                + (ocr_read or 0.0) * starts["chunk"]) / max(len(self.files), 1)
        elapsed = time.perf_counter() - self.started
        eta = elapsed * (1 - done) / done if done > 0.02 else None
        return done, eta

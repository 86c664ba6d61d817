"""Chroma collections: embedded under the data dir, or a Chroma server when CHROMA_HOST is set.

Every collection is created with the Studio's own embedding function (never Chroma's default,
which downloads a model) in cosine space, and records the embedding model, chunk settings and
chunking version it was built with. Ingestion embeds in batches itself and passes the vectors in.

Writes survive `kill -9` and a second writer: every change to a collection's chunks or metadata
happens under the collection's writer lock (an flock, freed by the kernel when its holder dies),
and a document's new chunks are announced in the collection's metadata before they are written
(`pending:<generation>`), so whoever opens the collection after a crash finishes or undoes them.
"""

from __future__ import annotations

import fcntl
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import ServiceUnavailable, StudioError
from core.files import check_name
from core.rag.chunking import CHUNKING_VERSION, Chunk
from core.settings import Settings


class StoreError(StudioError):
    pass


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    embedding_model: str
    chunk_size: int
    chunk_overlap: int
    chunks: int
    chunking_version: int

    @property
    def outdated(self) -> bool:
        """Chunked by an older version of the Studio: a re-index gives it today's chunks."""
        return self.chunking_version < CHUNKING_VERSION


def client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                       settings=chroma_settings)
        except ValueError as exc:  # what Chroma raises when nothing answers at the address
            raise ServiceUnavailable(f"the Chroma server at http://{settings.chroma_host}:"
                                     f"{settings.chroma_port} did not answer; nothing was lost: "
                                     "try again once it is back") from exc
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def open_collection(chroma, name: str, embedding_model: str, chunk_size: int,
                    chunk_overlap: int):
    """The named collection, created when new; refused when it was built with another
    embedding model, since its vectors would not be comparable."""
    from chromadb.errors import NotFoundError

    from core.rag.embeddings import StudioEmbeddingFunction

    check_name(name, "collection")
    try:
        chroma.get_collection(name, embedding_function=None)
    except NotFoundError:
        try:
            return chroma.create_collection(
                name, embedding_function=StudioEmbeddingFunction(embedding_model),
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedding_model": embedding_model, "chunk_size": chunk_size,
                          "chunk_overlap": chunk_overlap, "chunking_version": CHUNKING_VERSION})
        except Exception:  # another writer created it a moment ago: use theirs
            pass
    existing = get_collection(chroma, name)
    built_with = (existing.metadata or {}).get("embedding_model")
    if built_with != embedding_model:
        raise StoreError(f"collection {name!r} was built with {built_with}; it cannot be used "
                         f"with {embedding_model}. Choose that model or a new collection.")
    return existing


def replace_document(collection, doc_id: str, file_name: str, chunks: list[Chunk],
                     embeddings: list[list[float]], batch_size: int,
                     ocr_pages: frozenset[int] = frozenset()) -> None:
    """Store one document whole or not at all.

    Chroma has no transactions, and a long document takes several writes. The new chunks go
    in under a fresh generation, announced first as pending with its chunk count; only when
    every write succeeded are the older generations of the same document deleted and the
    announcement withdrawn. A failure removes what this call wrote, leaving the previous
    version untouched; a crash leaves the announcement, which `repair` acts on. A chunk of one
    of `ocr_pages` is marked as read by OCR (a re-index reads its document so again).
    """
    generation = uuid.uuid4().hex[:12]
    ids = [f"{doc_id}:{generation}:{c.index}" for c in chunks]
    metadatas = [{"doc_id": doc_id, "generation": generation, "file": file_name, "page": c.page,
                  "chunk": c.index, "start": c.start, "end": c.end, "title": c.title,
                  "section": c.section, "ocr": c.page in ocr_pages} for c in chunks]
    with writer_lock(collection):
        _set_metadata(collection, {PENDING + generation: len(ids)})
        try:
            for i in range(0, len(ids), batch_size):
                sl = slice(i, i + batch_size)
                collection.add(ids=ids[sl], embeddings=embeddings[sl],
                               documents=[c.text for c in chunks[sl]], metadatas=metadatas[sl])
        except Exception:
            collection.delete(where={"generation": generation})
            _set_metadata(collection, {}, drop=[PENDING + generation])
            raise
        _delete_older_generations(collection, doc_id, generation)
        _set_metadata(collection, {"revision": _fresh_revision(collection)},
                      drop=[PENDING + generation])


PENDING = "pending:"  # a collection metadata key: a generation being written, its chunk count


def _delete_older_generations(collection, doc_id: str, generation: str) -> None:
    collection.delete(where={"$and": [{"doc_id": doc_id}, {"generation": {"$ne": generation}}]})


def repair(collection) -> None:
    """Finish or undo the writes a crashed writer left: a pending generation that holds all its
    chunks replaces the document's older ones; one that does not is removed, leaving the
    document as it was. A writer at work holds the lock, so its pending generation is left
    alone (and nothing is repaired this time)."""
    if not any(key.startswith(PENDING) for key in collection.metadata or {}):
        return
    with writer_lock(collection, wait=False) as held:
        if not held:
            return
        pending = {key: expected for key, expected in _metadata(collection).items()
                   if key.startswith(PENDING)}
        for key, expected in pending.items():
            generation = key.removeprefix(PENDING)
            metas = read_all(collection, ["metadatas"], where={"generation": generation})
            if metas["ids"] and len(metas["ids"]) == expected:
                _delete_older_generations(collection, metas["metadatas"][0]["doc_id"], generation)
            else:
                collection.delete(where={"generation": generation})
        if pending:
            _set_metadata(collection, {"revision": _fresh_revision(collection)}, drop=list(pending))


@contextmanager
def writer_lock(collection, wait: bool = True) -> Iterator[bool]:
    """Held by whoever changes the collection: yields True once held, or False at once when
    `wait` is off and another writer holds it. The lock file is named by the collection's id,
    so every process on this machine (pages, CLI, API), embedded or against one Chroma server,
    takes the same lock; the kernel frees it when its holder dies."""
    path = Path(tempfile.gettempdir()) / "studio-locks" / f"{collection.id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _metadata(collection) -> dict:
    """The collection's metadata as stored now; the collection object's own copy is from when it
    was opened, and another writer may have changed it since."""
    model = collection._client.get_collection(name=collection.name, tenant=collection.tenant,
                                              database=collection.database)
    return dict(model.metadata or {})


def _set_metadata(collection, changes: dict, drop: Sequence[str] = ()) -> None:
    """Change some metadata keys, the writer lock held, keeping what other writers stored."""
    # Chroma refuses any "hnsw:*" key on modify, even unchanged (collections made before the
    # space moved into the configuration carry "hnsw:space").
    meta = {k: v for k, v in _metadata(collection).items()
            if not k.startswith("hnsw:") and k not in drop}
    collection.modify(metadata={**meta, **changes})


def _fresh_revision(collection) -> int:
    return int(_metadata(collection).get("revision", 0)) + 1


def revision(collection) -> int:
    """Changes whenever the collection's chunks do: keyword indexes are rebuilt on change."""
    return int((collection.metadata or {}).get("revision", 0))


def update_metadata(collection, **changes) -> None:
    """Change collection metadata; a new revision, since keyword indexes keep metadata too."""
    with writer_lock(collection):
        _set_metadata(collection, {**changes, "revision": _fresh_revision(collection)})


def describe(collection) -> CollectionInfo:
    meta = collection.metadata or {}
    return CollectionInfo(collection.name, meta.get("embedding_model", "?"),
                          int(meta.get("chunk_size", 0)), int(meta.get("chunk_overlap", 0)),
                          collection.count(), int(meta.get("chunking_version", 1)))


PAGE = 5000  # rows per read: Chroma's SQLite refuses one read of ~100k rows (too many variables)


def read_all(collection, include: list[str], where: dict | None = None) -> dict[str, list]:
    """Every matching row, read page by page."""
    out: dict[str, list] = {"ids": [], **{key: [] for key in include}}
    offset = 0
    while True:
        got = collection.get(where=where, include=include, limit=PAGE, offset=offset)
        for key in out:
            out[key] += got[key]
        if len(got["ids"]) < PAGE:
            return out
        offset += PAGE


def list_collections(chroma) -> list[CollectionInfo]:
    return sorted((describe(c) for c in chroma.list_collections()), key=lambda c: c.name)


def documents(collection) -> list[dict]:
    """One row per document: its file, doc_id, chunk and page counts, whether OCR read any of
    its pages (`ocr`; False for documents stored before that was recorded), and its labels when
    it was classified (`labels`: every label on its chunks, several when pages were classified
    one by one; `label_p`: the lowest probability among its chunks, the doubt that matters)."""
    metas = read_all(collection, ["metadatas"])["metadatas"]
    docs: dict[str, dict] = {}
    for meta in metas:
        row = docs.setdefault(meta["doc_id"], {"file": meta["file"], "doc_id": meta["doc_id"],
                                               "chunks": 0, "pages": 0, "ocr": False,
                                               "labels": [], "label_p": None})
        row["chunks"] += 1
        row["ocr"] = row["ocr"] or bool(meta.get("ocr"))
        row["pages"] = max(row["pages"], int(meta["page"]))
        if LABEL in meta:
            if meta[LABEL] not in row["labels"]:
                row["labels"] = sorted([*row["labels"], meta[LABEL]])
            p = float(meta.get(LABEL_P, 0.0))
            row["label_p"] = p if row["label_p"] is None else min(row["label_p"], p)
    return sorted(docs.values(), key=lambda d: d["file"])


# Labels ------------------------------------------------------------------------------------
# A classifier's verdict lives on each chunk, so that retrieval can filter on it like on doc_id;
# which adapter gave them lives on the collection. Chroma merges metadata on update, so labels
# are written without touching the chunks' text, vectors or other keys.
LABEL, LABEL_P = "label", "label_p"
LABELLED_BY = "labelled_by"


def write_labels(collection, labels: dict[str, tuple[str, float]], source: str,
                 batch_size: int = PAGE) -> None:
    """Label chunks by id: {chunk id: (label, probability)}, and name `source` as the labels'
    origin once every write went through. Each write is a whole, valid metadata update, so a
    failure halfway leaves a usable collection whose chunks carry either their new label or
    the one they had; the collection's `labelled_by` then still names the previous source."""
    ids = list(labels)
    with writer_lock(collection):
        for start in range(0, len(ids), batch_size):
            part = ids[start:start + batch_size]
            collection.update(ids=part, metadatas=[{LABEL: labels[i][0], LABEL_P: labels[i][1]}
                                                   for i in part])
    update_metadata(collection, **{LABELLED_BY: source})


def labelled_by(collection) -> str | None:
    return (collection.metadata or {}).get(LABELLED_BY)


def collection_labels(docs: list[dict]) -> list[str]:
    """Every label given to a document of the collection (rows from `documents`)."""
    return sorted({label for doc in docs for label in doc["labels"]})


def delete_collection(chroma, name: str) -> None:
    try:
        chroma.delete_collection(name)
    except Exception as exc:
        raise _lookup_failed(chroma, name, exc) from exc


def _lookup_failed(chroma, name: str, exc: Exception) -> StoreError:
    """A missing collection names the ones there are; anything else (a server gone, a broken
    folder) says what went wrong instead of pretending the collection does not exist."""
    from chromadb.errors import NotFoundError

    # Embedded Chroma raises NotFoundError; over HTTP some versions raise a plain error whose
    # message is the server's.
    if isinstance(exc, NotFoundError) or "does not exist" in str(exc):
        try:
            known = ", ".join(c.name for c in list_collections(chroma)) or "none yet"
        except Exception:
            known = "unknown"
        return StoreError(f"no collection named {name!r} (collections: {known})")
    return StoreError(f"collection {name!r} could not be opened: {exc}")


def built_with(chroma, name: str) -> str | None:
    """The embedding model an existing collection was built with; None for a new name."""
    try:
        collection = chroma.get_collection(name, embedding_function=None)
    except Exception:  # a new name, or one that open_collection refuses with its own reason
        return None
    return (collection.metadata or {}).get("embedding_model")


def get_collection(chroma, name: str):
    """An existing collection, with the embedding function of the model it was built with
    (Chroma would otherwise hand back its own default one, which downloads a model), and
    repaired when a writer died in the middle of a write."""
    from core.rag.embeddings import StudioEmbeddingFunction

    try:
        collection = chroma.get_collection(name, embedding_function=None)
    except Exception as exc:
        raise _lookup_failed(chroma, name, exc) from exc
    model = (collection.metadata or {}).get("embedding_model")
    if model:
        collection = chroma.get_collection(name, embedding_function=StudioEmbeddingFunction(model))
    repair(collection)
    return collection


def delete_document(collection, doc_id: str) -> int:
    with writer_lock(collection):
        ids = read_all(collection, [], where={"doc_id": doc_id})["ids"]
        for start in range(0, len(ids), PAGE):
            collection.delete(ids=ids[start:start + PAGE])
        if ids:
            _set_metadata(collection, {"revision": _fresh_revision(collection)})
    return len(ids)


def rename_collection(chroma, old: str, new: str) -> None:
    check_name(new, "collection")
    if new in {c.name for c in chroma.list_collections()}:
        raise StoreError(f"a collection named {new!r} already exists")
    get_collection(chroma, old).modify(name=new)


def chunks_of(collection, doc_id: str) -> list[dict]:
    """Every chunk of one document, in reading order."""
    return chunks_by_document(collection, where={"doc_id": doc_id}).get(doc_id, [])


def chunks_by_document(collection, where: dict | None = None) -> dict[str, list[dict]]:
    """Every (matching) chunk, with its id and text, grouped by doc_id in reading order."""
    got = read_all(collection, ["metadatas", "documents"], where=where)
    docs: dict[str, list[dict]] = {}
    for id_, meta, text in zip(got["ids"], got["metadatas"], got["documents"]):
        docs.setdefault(meta["doc_id"], []).append({**meta, "id": id_, "text": text})
    return {doc_id: sorted(rows, key=lambda r: r["chunk"]) for doc_id, rows in docs.items()}


def document_text(collection, doc_id: str) -> str:
    """A stored document's text rebuilt from its chunks (see `page_texts`)."""
    pages = page_texts(chunks_of(collection, doc_id))
    return "\n\n".join(pages[p] for p in sorted(pages))


def page_texts(chunks: list[dict]) -> dict[int, str]:
    """Each page's text rebuilt from one document's chunks in reading order: each chunk goes
    back to its span, so overlaps are not repeated. The whitespace between two chunks comes
    back as a space, or, two characters or more, as a paragraph break: cleaned text keeps one
    space between sentences and a blank line between paragraphs, and a web page's "Tip 1: …"
    heading, which opens a chunk, was shown run on at the end of the paragraph before it."""
    pages: dict[int, str] = {}
    for row in chunks:
        start = int(row["start"])
        text = pages.get(row["page"], "")[:start]
        gap = start - len(text)
        pages[row["page"]] = text + ("\n\n".rjust(gap) if gap >= 2 else " " * gap) + row["text"]
    return pages


def neighbours(collection, doc_id: str, chunk: int, radius: int = 1) -> list[dict]:
    """The chunks up to `radius` before and after one chunk of a document."""
    near = [chunk + d for d in range(-radius, radius + 1) if d]
    got = collection.get(where={"$and": [{"doc_id": doc_id}, {"chunk": {"$in": near}}]},
                         include=["metadatas", "documents"])
    rows = [{**m, "text": t} for m, t in zip(got["metadatas"], got["documents"])]
    return sorted(rows, key=lambda r: r["chunk"])

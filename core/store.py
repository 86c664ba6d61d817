"""Chroma collections: embedded under the data dir, or a Chroma server when CHROMA_HOST is set.

Embeddings are always computed by the Studio and passed in, so Chroma never reaches for its
default embedding function (which downloads a model). Each collection records the embedding
model and chunk settings it was built with.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.chunking import Chunk
from core.config import Settings


class StoreError(Exception):
    pass


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    embedding_model: str
    chunk_size: int
    chunk_overlap: int
    chunks: int


def client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                   settings=chroma_settings)
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def open_collection(chroma, name: str, embedding_model: str, chunk_size: int,
                    chunk_overlap: int):
    collection = chroma.get_or_create_collection(
        name, embedding_function=None,
        metadata={"hnsw:space": "cosine", "embedding_model": embedding_model,
                  "chunk_size": chunk_size, "chunk_overlap": chunk_overlap})
    built_with = (collection.metadata or {}).get("embedding_model")
    if built_with and built_with != embedding_model:
        raise StoreError(f"collection {name!r} was built with {built_with}; it cannot be used "
                         f"with {embedding_model}. Choose that model or a new collection.")
    return collection


def upsert_document(collection, doc_id: str, file_name: str, chunks: list[Chunk],
                    embeddings: list[list[float]], batch_size: int) -> None:
    """Replace every chunk of one document. Chunks left over from an older, longer version of
    the same document are removed after the new ones are in."""
    ids = [f"{doc_id}:{c.index}" for c in chunks]
    metadatas = [{"doc_id": doc_id, "file": file_name, "page": c.page, "chunk": c.index,
                  "start": c.start, "end": c.end} for c in chunks]
    for i in range(0, len(ids), batch_size):
        sl = slice(i, i + batch_size)
        collection.upsert(ids=ids[sl], embeddings=embeddings[sl],
                          documents=[c.text for c in chunks[sl]], metadatas=metadatas[sl])
    existing = collection.get(where={"doc_id": doc_id}, include=[])["ids"]
    stale = sorted(set(existing) - set(ids))
    if stale:
        collection.delete(ids=stale)


def describe(collection) -> CollectionInfo:
    meta = collection.metadata or {}
    return CollectionInfo(collection.name, meta.get("embedding_model", "?"),
                          int(meta.get("chunk_size", 0)), int(meta.get("chunk_overlap", 0)),
                          collection.count())

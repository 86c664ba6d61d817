"""Keyword search over a collection (bm25s), kept on disk per collection revision so that a
fresh process does not rebuild it."""

from __future__ import annotations

import functools
import math
import shutil
import threading
from pathlib import Path

import numpy as np

from core import files
from core.rag import store
from core.rag.chunking import contextual_text
from core.rag.terms import TOKENS_VERSION, tokenize


class Bm25Index:
    """Keywords of each chunk read with its document title and section, as the embeddings
    read it; `texts` stay the plain chunk texts that hits show."""

    CHUNKS = "chunks.json"  # ids, texts and metadata beside bm25s's own files

    def __init__(self, ids: list[str], texts: list[str], metas: list[dict], retriever=None):
        import bm25s

        self.ids, self.texts, self.metas = ids, texts, metas
        self.retriever = retriever
        if retriever is None:
            self.retriever = bm25s.BM25()
            if ids:
                contextual = [contextual_text(m.get("title", ""), m.get("section", ""), t)
                              for t, m in zip(texts, metas)]
                self.retriever.index(tokenize(contextual), show_progress=False)

    @functools.cached_property
    def titles(self) -> list[str]:
        """The documents' titles, each once."""
        return list(dict.fromkeys(m["title"] for m in self.metas if m.get("title")))

    @functools.cached_property
    def pages(self) -> dict[str, int]:
        """doc id -> its number of pages (its last page's): one where it came out as one long
        page (a text file, .docx or web page)."""
        pages: dict[str, int] = {}
        for m in self.metas:
            pages[m["doc_id"]] = max(pages.get(m["doc_id"], 0), int(m["page"]))
        return pages

    @functools.cached_property
    def doc_ids(self) -> frozenset[str]:
        """The documents' ids."""
        return frozenset(m["doc_id"] for m in self.metas)

    def idf(self, terms: set[str]) -> dict[str, float]:
        """Each term's inverse document frequency over the chunks, as BM25 weighs it (Lucene's
        form). A term that no chunk holds weighs as the others do on average: it is more
        often the asker's own word than the subject ("How many hours of work are covered?"
        over a statement of work), and at BM25's weight it outweighed the rest of the question
        (coverage 0.44 for the chunk that answers it, refused)."""
        if not self.ids:
            return {}
        vocab, indptr = self.retriever.vocab_dict, self.retriever.scores["indptr"]
        n = len(self.ids)

        def held(term: str) -> int:  # how many chunks hold the term: its column's entries
            at = vocab.get(term)
            return 0 if at is None or at + 1 >= len(indptr) else int(indptr[at + 1] - indptr[at])

        counts = {t: held(t) for t in terms}
        weights = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in counts.items() if c}
        unseen = sum(weights.values()) / len(weights) if weights else 1.0
        return {t: weights.get(t, unseen) for t in terms}

    def save(self, folder: Path) -> None:
        """Written whole or not at all: another process may be loading it."""
        with files.replacing_folder(folder) as staging:
            if self.ids:
                self.retriever.save(str(staging), show_progress=False)
            files.write_json(staging / self.CHUNKS, {"ids": self.ids, "texts": self.texts,
                                                     "metas": self.metas})

    @classmethod
    def load(cls, folder: Path) -> Bm25Index | None:
        import bm25s

        chunks = files.read_json(folder / cls.CHUNKS)
        if not isinstance(chunks, dict):
            return None
        retriever = (bm25s.BM25.load(str(folder), show_progress=False) if chunks["ids"]
                     else bm25s.BM25())
        return cls(chunks["ids"], chunks["texts"], chunks["metas"], retriever)

    def search(self, query: str, n: int, doc_ids: tuple[str, ...] = (),
               labels: tuple[str, ...] = ()) -> list[tuple[int, float]]:
        if not self.ids:
            return []
        mask = None
        if doc_ids or labels:
            mask = np.array([(not doc_ids or m["doc_id"] in doc_ids)
                             and (not labels or m.get(store.LABEL) in labels)
                             for m in self.metas], dtype=np.float32)
        n = min(n, len(self.ids))
        docs, scores = self.retriever.retrieve(tokenize([query]), k=n, show_progress=False,
                                               weight_mask=mask)
        return [(int(i), float(s)) for i, s in zip(docs[0], scores[0]) if s > 0]


_cache: dict[tuple[str, str], tuple[int, Bm25Index]] = {}
_lock = threading.Lock()


def bm25_index(collection, index_dir: Path) -> Bm25Index:
    """The collection's keyword index for its current revision (bumped by every write): from
    memory, else from `index_dir`, else built from the collection and saved there, so a fresh
    process (`python -m core search`) does not rebuild it."""
    key = (str(collection.id), collection.name)
    rev = store.revision(collection)
    folder = (Path(index_dir) / f"{collection.name}-{collection.id}"
              / f"bm25-r{rev}-t{TOKENS_VERSION}")
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] == rev:
            return cached[1]
        index = Bm25Index.load(folder)
        if index is None:
            got = store.read_all(collection, ["documents", "metadatas"])
            index = Bm25Index(got["ids"], got["documents"], got["metadatas"])
            index.save(folder)
            for older in folder.parent.glob("bm25-r*"):
                if older != folder:
                    shutil.rmtree(older, ignore_errors=True)
        _cache[key] = (rev, index)
        return index

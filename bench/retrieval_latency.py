"""Retrieval latency at 10k and 100k chunks, k=5: the Studio's search (Chroma HNSW for dense,
bm25s for keywords, both for hybrid) against exact brute-force cosine search in NumPy.

Chunks: texts drawn from the real papers' chunks (so BM25 sees real vocabulary) with random unit
vectors (embedding 100k chunks would take half an hour here and does not change search cost).
Questions: the 43 QASPER questions, embedded for real. Latency includes embedding the question,
as a user waits for it. Prints p50/p95 per method and size, then JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-latency-")

from bench.qa import qasper
from bench.timing import percentiles
from core.rag import store
from core.rag.chunking import chunk_pages
from core.rag.embeddings import get_embedder
from core.rag.retrieval import RetrievalOptions, search
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]

SIZES = (10_000, 100_000)
DIM = 384


def build(chroma, settings, n: int, texts: list[str], rng) -> np.ndarray:
    collection = store.open_collection(chroma, f"bench-{n}", settings.embedding_model, 500, 50)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    batch = chroma.get_max_batch_size()
    for start in range(0, n, batch):
        ids = range(start, min(n, start + batch))
        collection.add(ids=[f"c{i}" for i in ids], embeddings=vectors[start:start + batch],
                       documents=[texts[i % len(texts)] for i in ids],
                       metadatas=[{"doc_id": f"d{i // 100}", "file": f"doc{i // 100}.pdf",
                                   "page": 1, "chunk": i % 100, "start": 0, "end": 1}
                                  for i in ids])
    return vectors


def main() -> None:
    settings = load_settings()
    chroma = store.client(settings)
    embedder = get_embedder(settings)
    questions = [q for _, _, qs in qasper() for q, _ in qs]
    texts = [c.text for _, passages, _ in qasper() for c in chunk_pages(passages)]
    rng = np.random.default_rng(0)
    results = {}
    for n in SIZES:
        started = time.perf_counter()
        vectors = build(chroma, settings, n, texts, rng)
        built_s = time.perf_counter() - started
        rows = {}
        for method in ("dense", "bm25", "hybrid"):
            options = RetrievalOptions(k=5, method=method)
            search(settings, f"bench-{n}", questions[0], options, chroma)  # warm indexes
            rows[method] = percentiles([search(settings, f"bench-{n}", q, options,
                                               chroma).seconds for q in questions])

        def brute(q: str, vectors=vectors) -> float:
            t = time.perf_counter()
            qv = np.asarray(embedder.embed([q])[0], dtype=np.float32)
            np.argpartition(-(vectors @ qv), 5)[:5]
            return time.perf_counter() - t

        rows["numpy exact (baseline)"] = percentiles([brute(q) for q in questions])
        results[n] = {"build_s": built_s, "methods": rows}
    print(f"{'chunks':>8}  {'method':<24}{'p50 ms':>8}{'p95 ms':>8}")
    for n, r in results.items():
        for method, p in r["methods"].items():
            print(f"{n:>8}  {method:<24}{p['p50_ms']:>8.1f}{p['p95_ms']:>8.1f}")
    print(json.dumps({"questions": len(questions), "k": 5, "results": results}))


if __name__ == "__main__":
    main()

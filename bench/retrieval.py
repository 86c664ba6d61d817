"""Retrieval quality: the Studio's methods against the reference notebook's configuration.

Data: QASPER (10 papers, questions with gold evidence paragraphs) and SQuAD 2.0's first article
(answerable questions, gold = the passage holding the answer), from ../shared/data/qa. Each
document is joined into one text, split with the Studio's splitter (500/50), embedded and stored
in a temporary Chroma collection; a retrieved chunk is a hit when its character span overlaps
a gold paragraph. Baseline: the reference notebook's setup, the same chunks with dense top-3.
Prints hit@1/3/5 and MRR (over the chunks each method returns), then JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-retrieval-")

from bench.qa import overlaps, qasper, squad
from core.rag import store
from core.rag.chunking import chunk_pages
from core.rag.embeddings import get_embedder
from core.rag.retrieval import RetrievalOptions, search
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]

METHODS = {
    "reference: dense top-3": RetrievalOptions(k=3, method="dense", rerank=False),
    "dense top-5": RetrievalOptions(k=5, method="dense", rerank=False),
    "bm25 top-5": RetrievalOptions(k=5, method="bm25", rerank=False),
    "hybrid (RRF) top-5": RetrievalOptions(k=5, method="hybrid", rerank=False),
    "hybrid + MMR top-5": RetrievalOptions(k=5, method="hybrid", mmr=True, rerank=False),
    "dense reranked top-5": RetrievalOptions(k=5, method="dense"),
    "hybrid reranked top-5 (default)": RetrievalOptions(k=5, method="hybrid"),
}


def index(settings, chroma, embedder, name: str, paragraphs: list[str]) -> list[tuple[int, int]]:
    """Store the joined document; return each paragraph's character span."""
    spans, text = [], ""
    for p in paragraphs:
        spans.append((len(text), len(text) + len(p)))
        text += p + "\n\n"
    chunks = chunk_pages([text])
    collection = store.open_collection(chroma, name, embedder.model_name, 500, 50)
    store.replace_document(collection, name, name, chunks,
                           embedder.embed([c.text for c in chunks]), chroma.get_max_batch_size())
    return spans


def evaluate(settings, chroma, dataset) -> dict[str, dict]:
    ranks: dict[str, list[int | None]] = {m: [] for m in METHODS}
    for name, paragraphs, questions in dataset:
        spans = index(settings, chroma, get_embedder(settings), name, paragraphs)
        for question, gold in questions:
            gold_spans = [spans[i] for i in gold]
            for method, options in METHODS.items():
                hits = search(settings, name, question, options, chroma).hits
                first = next((h.rank for h in hits if overlaps(h.start, h.end, gold_spans)),
                             None)
                ranks[method].append(first)
    return {m: summarise(r) for m, r in ranks.items()}


def summarise(ranks: list[int | None]) -> dict:
    n = len(ranks)
    hit = lambda k: sum(1 for r in ranks if r is not None and r <= k) / n  # noqa: E731
    return {"questions": n, "hit@1": hit(1), "hit@3": hit(3), "hit@5": hit(5),
            "mrr": sum(1 / r for r in ranks if r is not None) / n}


def main() -> None:
    settings = load_settings()
    chroma = store.client(settings)
    results = {"qasper": evaluate(settings, chroma, qasper()),
               "squad": evaluate(settings, chroma, squad())}
    for data, rows in results.items():
        print(f"\n{data}: {next(iter(rows.values()))['questions']} questions")
        print(f"{'method':<34}{'hit@1':>8}{'hit@3':>8}{'hit@5':>8}{'MRR':>8}")
        for method, r in rows.items():
            print(f"{method:<34}{r['hit@1']:>8.3f}{r['hit@3']:>8.3f}{r['hit@5']:>8.3f}"
                  f"{r['mrr']:>8.3f}")
    verdict = {data: {"default_minus_reference_hit@5":
                      rows["hybrid reranked top-5 (default)"]["hit@5"] - rows["reference: dense top-3"]["hit@5"],
                      "default_minus_reference_mrr":
                      rows["hybrid reranked top-5 (default)"]["mrr"] - rows["reference: dense top-3"]["mrr"]}
               for data, rows in results.items()}
    print(json.dumps({"results": results, "default_vs_reference": verdict}))


if __name__ == "__main__":
    main()

"""bf16 against fp32 embeddings for all-MiniLM-L6-v2: speed and retrieval quality.

Quality: QASPER (../shared/data/qa/qasper_sample): per paper, every paragraph is a passage and
each question's gold evidence paragraphs are the relevant ones; hit@1, hit@5 and MRR over all
questions with text evidence. Speed: sentences/s embedding the same passages.
Baseline: fp32. Prints a table, then JSON.
"""

from __future__ import annotations

import json
import time

import numpy as np

from bench.qa import qasper
from core.rag.embeddings import Embedder
from core.registry import Registry
from core.settings import load_settings


def evaluate(embedder: Embedder, tasks) -> dict:
    ranks, seconds, sentences = [], 0.0, 0
    for _, passages, questions in tasks:
        started = time.perf_counter()
        p = np.asarray(embedder.embed(passages))
        seconds += time.perf_counter() - started
        sentences += len(passages)
        q = np.asarray(embedder.embed([text for text, _ in questions]))
        order = np.argsort(-(q @ p.T), axis=1)
        for row, (_, gold) in zip(order, questions):
            ranks.append(next(r for r, idx in enumerate(row, start=1) if idx in gold))
    ranks = np.asarray(ranks)
    return {"questions": int(len(ranks)), "hit@1": float(np.mean(ranks <= 1)),
            "hit@5": float(np.mean(ranks <= 5)), "mrr": float(np.mean(1 / ranks)),
            "sentences_per_s": sentences / seconds}


def main() -> None:
    settings = load_settings()
    registry = Registry.load(settings.registry_path, settings.models_dir)
    spec = registry.get(settings.embedding_model)
    path = str(registry.load_path(spec))
    tasks = qasper()
    rows = {}
    for name, bf16 in (("fp32 (baseline)", False), ("bf16", True)):
        embedder = Embedder(spec.name, path, bf16)
        embedder.embed(["warm-up"] * 8)
        rows[name] = evaluate(embedder, tasks)
    base, bf = rows["fp32 (baseline)"], rows["bf16"]
    print(f"{'precision':<16}{'questions':>10}{'hit@1':>8}{'hit@5':>8}{'MRR':>8}{'sent/s':>9}")
    for name, r in rows.items():
        print(f"{name:<16}{r['questions']:>10}{r['hit@1']:>8.3f}{r['hit@5']:>8.3f}"
              f"{r['mrr']:>8.3f}{r['sentences_per_s']:>9.1f}")
    summary = {"model": spec.name, "results": rows,
               "speed_ratio_bf16_over_fp32": bf["sentences_per_s"] / base["sentences_per_s"],
               "mrr_delta_bf16_minus_fp32": bf["mrr"] - base["mrr"]}
    print(f"bf16 is {summary['speed_ratio_bf16_over_fp32']:.2f}x fp32; MRR delta "
          f"{summary['mrr_delta_bf16_minus_fp32']:+.4f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Fits the constants of core/rag/relevance.py: P(chunk supports the answer) from the dense
cosine and the question-word coverage, and the answerability threshold on the best of the
top-5 relevances.

Data: ../shared/data/qa, SQuAD 2.0's first dev article (each passage a document) and the QASPER
sample (each paper a document), indexed with the Studio's chunking (500/50) in a temporary
Chroma. Examples: the top 20 hybrid hits of every answerable question (with evidence marked). A
chunk supports the answer when it overlaps a gold paragraph and (SQuAD) contains a gold answer
text. Unanswerable questions are left out of this fit: SQuAD's are written against the very
passage they are not answered by, so they would teach that the best-matching chunk of a
passage is unlikely to hold an answer; whether a question is answered at all is the separate
threshold below, swept over all questions. Prints the fit, a reliability table, the same fit with the fused rank
added (for comparison: the rank depends on the method, so the Studio does not use it), the
threshold sweep, then JSON with the constants to copy into core/rag/relevance.py.
"""

from __future__ import annotations

import json
import os
import tempfile

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-calibrate-")

import numpy as np

from bench.qa import QaSet, overlaps, qasper_set, squad_set, store_documents
from core.rag import store
from core.rag.embeddings import get_embedder
from core.rag.retrieval import RetrievalOptions, search
from core.settings import load_settings

CANDIDATES = RetrievalOptions(k=20, method="hybrid", window=0, rerank=False)
SHOWN = 5  # the Studio's default k: answerability looks at what the model would be given
MAX_FALSE_REFUSALS = 0.10


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def supports(hit, doc_id: str, question, spans) -> bool:
    if hit.doc_id != doc_id or not question.answerable:
        return False
    in_gold = overlaps(hit.start, hit.end, [spans[doc_id][i] for i in question.gold])
    return in_gold and (len(spans[doc_id]) > 1  # QASPER: the evidence paragraph itself
                         or any(normalise(a) in normalise(hit.text) for a in question.answers))


def examples(settings, chroma, qa: QaSet) -> tuple[list, list]:
    """(per-chunk rows [cosine, coverage, 1/rank, label], per-question rows
    (answerable, [[cosine, coverage] of the top SHOWN]))."""
    spans = store_documents(chroma, get_embedder(settings), qa.name, qa.documents)
    chunks, questions = [], []
    for doc_id, question in qa.questions:
        hits = search(settings, qa.name, question.text, CANDIDATES, chroma).hits
        if question.answerable and not question.gold:
            continue  # no evidence marked: nothing to label
        if question.answerable:
            chunks += [[h.cosine, h.coverage, 1 / h.rank, supports(h, doc_id, question, spans)]
                       for h in hits]
        questions.append((question.answerable, [[h.cosine, h.coverage] for h in hits[:SHOWN]]))
    return chunks, questions


def fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score

    model = LogisticRegression(C=10.0).fit(x, y)
    p = model.predict_proba(x)[:, 1]
    return model, {"log_loss": round(log_loss(y, p), 4), "auc": round(roc_auc_score(y, p), 4)}


def reliability(p: np.ndarray, y: np.ndarray) -> list[dict]:
    rows = []
    for lo, hi in [(0, .05), (.05, .1), (.1, .2), (.2, .35), (.35, .5), (.5, .7), (.7, 1.01)]:
        inside = (p >= lo) & (p < hi)
        if inside.any():
            rows.append({"predicted": f"{lo:.2f}-{min(hi, 1):.2f}", "chunks": int(inside.sum()),
                         "mean_predicted": round(float(p[inside].mean()), 3),
                         "share_supporting": round(float(y[inside].mean()), 3)})
    return rows


def sweep(model, questions) -> tuple[float, list[dict]]:
    best = [max(model.predict_proba(np.array(top))[:, 1]) if top else 0.0
            for _, top in questions]
    answerable = np.array([a for a, _ in questions])
    best = np.array(best)
    rows = []
    for t in np.arange(0.01, 0.41, 0.01):
        rows.append({"threshold": round(float(t), 2),
                     "refused_unanswerable": round(float((best[~answerable] < t).mean()), 3),
                     "false_refusals": round(float((best[answerable] < t).mean()), 3)})
    chosen = max((r for r in rows if r["false_refusals"] <= MAX_FALSE_REFUSALS),
                 key=lambda r: r["threshold"])
    return chosen["threshold"], rows


def main() -> None:
    settings = load_settings()
    chroma = store.client(settings)
    chunks, questions = [], []
    for qa in (squad_set(), qasper_set()):
        c, q = examples(settings, chroma, qa)
        chunks += c
        questions += q
        print(f"{qa.name}: {len(q)} questions, {len(c)} chunks, "
              f"{sum(r[3] for r in c)} supporting")
    data = np.array(chunks, dtype=float)
    y = data[:, 3]
    model, quality = fit(data[:, :2], y)
    _, with_rank = fit(data[:, :3], y)
    constants = {"INTERCEPT": round(float(model.intercept_[0]), 2),
                 "COSINE": round(float(model.coef_[0][0]), 2),
                 "COVERAGE": round(float(model.coef_[0][1]), 2)}
    threshold, rows = sweep(model, questions)
    table = reliability(model.predict_proba(data[:, :2])[:, 1], y)
    print(f"\nfit on {len(y)} chunks ({y.mean():.1%} supporting): {constants} {quality}; "
          f"with the fused rank added: {with_rank}")
    print(f"\n{'predicted':<12}{'chunks':>8}{'mean p':>8}{'actual':>8}")
    for r in table:
        print(f"{r['predicted']:<12}{r['chunks']:>8}{r['mean_predicted']:>8.3f}"
              f"{r['share_supporting']:>8.3f}")
    print(f"\n{'threshold':>10}{'refused unanswerable':>22}{'false refusals':>16}")
    for r in rows:
        print(f"{r['threshold']:>10.2f}{r['refused_unanswerable']:>22.3f}"
              f"{r['false_refusals']:>16.3f}")
    print(f"\nANSWERABLE_MIN = {threshold} (false refusals <= {MAX_FALSE_REFUSALS:.0%})")
    print(json.dumps({"constants": constants, "quality": quality, "with_rank": with_rank,
                      "reliability": table, "ANSWERABLE_MIN": threshold, "sweep": rows}))


if __name__ == "__main__":
    main()

"""Fits the constants of core/rag/relevance.py: P(chunk supports the answer) from the dense
cosine and the question-word coverage; the same from the best sentence's cosine, for the
candidates that the first rates highest (relevance.RESCORED); and the answerability threshold
on the best relevance a question's candidates reach.

Data: ../shared/data/qa, SQuAD 2.0's first dev article (each passage a document) and the QASPER
sample (each paper a document), indexed with the Studio's chunking (500/50) in a temporary
Chroma. Examples: the top 20 hybrid hits of every answerable question (with evidence marked). A
chunk supports the answer when it overlaps a gold paragraph and (SQuAD) contains a gold answer
text. Unanswerable questions are left out of this fit: SQuAD's are written against the very
passage they are not answered by, so they would teach that the best-matching chunk of a
passage is unlikely to hold an answer; whether a question is answered at all is the separate
threshold below, swept over all questions. Prints both fits with their hit@1/3/5 (the
candidates ordered as the Studio orders them), a reliability table of the final relevance, the
first fit with the fused rank added (for comparison: the rank depends on the method, so the
Studio does not use it), the threshold sweep, then JSON with the constants to copy into
core/rag/relevance.py. The rated-again candidates are chosen by the constants in force, so run
it twice when they move much.
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
MAX_FALSE_REFUSALS = 0.10
COSINE, COVERAGE, SENTENCE, RANK, LABEL, QUESTION = range(6)  # columns of the chunk rows


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def supports(hit, doc_id: str, question, spans) -> bool:
    if hit.doc_id != doc_id or not question.answerable:
        return False
    in_gold = overlaps(hit.start, hit.end, [spans[doc_id][i] for i in question.gold])
    return in_gold and (len(spans[doc_id]) > 1  # QASPER: the evidence paragraph itself
                         or any(normalise(a) in normalise(hit.text) for a in question.answers))


def examples(settings, chroma, qa: QaSet, first: int) -> tuple[list, list]:
    """(per-chunk rows [cosine, coverage, best sentence's cosine or NaN, 1/rank, label,
    question number] of answerable questions, per-question rows (answerable, [the same] of
    every candidate)); questions numbered from `first`."""
    spans = store_documents(chroma, get_embedder(settings), qa.name, qa.documents)
    chunks, questions = [], []
    for number, (doc_id, question) in enumerate(qa.questions, first):
        hits = search(settings, qa.name, question.text, CANDIDATES, chroma).hits
        if question.answerable and not question.gold:
            continue  # no evidence marked: nothing to label
        rows = [[h.cosine, h.coverage, np.nan if h.sentence_cosine is None else h.sentence_cosine,
                 1 / h.rank, supports(h, doc_id, question, spans), number] for h in hits]
        if question.answerable:
            chunks += rows
        questions.append((question.answerable, rows))
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


class Relevance:
    """Both fits, applied as the Studio applies them: the sentence fit where it rated."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        p = self.first.predict_proba(rows[:, [COSINE, COVERAGE]])[:, 1]
        again = ~np.isnan(rows[:, SENTENCE])
        if again.any():
            p[again] = self.second.predict_proba(rows[again][:, [SENTENCE, COVERAGE]])[:, 1]
        return p


def hits_at(p: np.ndarray, data: np.ndarray, ks=(1, 3, 5)) -> dict:
    """Share of questions with a supporting chunk among the k of highest `p`."""
    found = {k: [] for k in ks}
    for q in np.unique(data[:, QUESTION]):
        rows = np.flatnonzero(data[:, QUESTION] == q)
        labels = data[rows[np.argsort(-p[rows], kind="stable")], LABEL]
        for k in ks:
            found[k].append(labels[:k].any())
    return {f"hit@{k}": round(float(np.mean(v)), 3) for k, v in found.items()}


def sweep(rate: Relevance, questions) -> tuple[float, list[dict]]:
    best = np.array([rate(np.array(rows, dtype=float)).max() if rows else 0.0
                     for _, rows in questions])
    answerable = np.array([a for a, _ in questions])
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
    chunks, questions, sets = [], [], {}
    for qa in (squad_set(), qasper_set()):
        c, q = examples(settings, chroma, qa, len(questions))
        sets[qa.name] = (len(chunks), len(chunks) + len(c))
        chunks += c
        questions += q
        print(f"{qa.name}: {len(q)} questions, {len(c)} chunks, "
              f"{sum(r[LABEL] for r in c)} supporting")
    data = np.array(chunks, dtype=float)
    y = data[:, LABEL]
    first, quality = fit(data[:, [COSINE, COVERAGE]], y)
    _, with_rank = fit(data[:, [COSINE, COVERAGE, RANK]], y)
    again = ~np.isnan(data[:, SENTENCE])
    second, quality_again = fit(data[again][:, [SENTENCE, COVERAGE]], y[again])
    constants = {"INTERCEPT": round(float(first.intercept_[0]), 2),
                 "COSINE": round(float(first.coef_[0][0]), 2),
                 "COVERAGE": round(float(first.coef_[0][1]), 2),
                 "S_INTERCEPT": round(float(second.intercept_[0]), 2),
                 "S_COSINE": round(float(second.coef_[0][0]), 2),
                 "S_COVERAGE": round(float(second.coef_[0][1]), 2)}
    rate = Relevance(first, second)
    p_first = first.predict_proba(data[:, [COSINE, COVERAGE]])[:, 1]
    p = rate(data)
    order = {name: {"first fit": hits_at(p_first[a:b], data[a:b]),
                    "rated again": hits_at(p[a:b], data[a:b])}
             for name, (a, b) in sets.items()}
    threshold, rows = sweep(rate, questions)
    table = reliability(p, y)
    print(f"\nfirst fit on {len(y)} chunks ({y.mean():.1%} supporting): {quality}; with the "
          f"fused rank added: {with_rank}\nrated again from the best sentence: "
          f"{int(again.sum())} chunks ({y[again].mean():.1%} supporting): {quality_again}\n"
          f"{constants}")
    for name, rows_by_fit in order.items():
        for fit_name, hits in rows_by_fit.items():
            print(f"{name:<8}{fit_name:<14}" + "".join(f"{k} {v:.3f}  " for k, v in hits.items()))
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
                      "quality_rated_again": quality_again, "order": order,
                      "reliability": table, "ANSWERABLE_MIN": threshold, "sweep": rows}))


if __name__ == "__main__":
    main()

"""Which signal tells an unanswerable question from an answerable one (issue 13, item 4)?

The Studio refuses a question when the best retrieved chunk's calibrated relevance is below
core.rag.relevance.ANSWERABLE_MIN; that catches questions the collection does not cover, but
SQuAD 2.0's unanswerable questions are written against the very passage that does not answer
them. This script measures, on the same questions, how well each available signal separates the
two kinds (ROC AUC: 0.5 is chance), and the share of unanswerable questions each would refuse
while refusing at most 15% of the answerable ones (the issue's false-refusal bar):

- retrieval: the best relevance, cosine and question-word coverage among the top 5 hits, and
  the coverage of the question's words by the top 3 hits together;
- the chat model itself, reading the Studio's own answer prompt (the passages and the question):
  the log-probability of starting its answer with a refusal ("I don't know", "The documents do
  not say"), and, in a prompt of its own, P(no) - P(yes) for "Do the passages above state the
  answer to the question?".

Data: ../shared/data/qa (bench/qa.py), every n-th question of each kind. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-answerability-")

import numpy as np

from bench.answers import subset
from bench.qa import QaSet, qasper_set, squad_set, store_documents
from core.rag import store
from core.rag.answers import RagTurn
from core.rag.embeddings import get_embedder
from core.rag.llm import get_engine
from core.rag.retrieval import RetrievalOptions, search
from core.rag.terms import coverage, question_terms
from core.settings import load_settings

REFUSALS = ("I don't know", "The documents do not say")
JUDGE = ("{passages}\n\nQuestion: {question}\n\nDo the passages above state the answer to the "
         "question? Answer yes or no.")
MAX_FALSE_REFUSALS = 0.15


# The model's next-token distribution, read from llama.cpp directly: create_completion gives
# log-probabilities only for a model loaded with logits for every token, which the Studio's
# engine does not need and does not pay for.
def _last_logprobs(llm) -> np.ndarray:
    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()
    logits -= logits.max()
    return logits - np.log(np.exp(logits).sum())


def _read(llm, tokens: list[int]) -> None:
    """The prompt into the context, re-reading only what differs from what it holds."""
    held = llm.input_ids[:llm.n_tokens]
    same = 0
    while same < min(len(held), len(tokens) - 1) and held[same] == tokens[same]:
        same += 1
    llm.n_tokens = same
    llm.eval(tokens[same:])


def continuation_logprob(engine, messages: list[dict], text: str) -> float:
    llm = engine.llm
    prompt, _ = engine._prompt(messages, "")
    _read(llm, llm.tokenize(prompt.encode(), add_bos=False, special=True))
    total = 0.0
    for token in llm.tokenize(text.encode(), add_bos=False, special=False):
        total += float(_last_logprobs(llm)[token])
        llm.eval([token])
    return total


def judge_no(engine, passages: str, question: str) -> float:
    llm = engine.llm
    messages = [{"role": "user", "content": JUDGE.format(passages=passages, question=question)}]
    prompt, _ = engine._prompt(messages, "")
    _read(llm, llm.tokenize(prompt.encode(), add_bos=False, special=True))
    logprobs = _last_logprobs(llm)
    first = lambda word: llm.tokenize(word.encode(), add_bos=False)[0]  # noqa: E731
    return float(max(logprobs[first(w)] for w in ("No", "no"))
                 - max(logprobs[first(w)] for w in ("Yes", "yes")))


def signals(settings, chroma, engine, qa: QaSet, question) -> dict:
    hits = search(settings, qa.name, question.text, RetrievalOptions(), chroma).hits
    terms = question_terms(question.text)
    row = {"answerable": question.answerable, "question": question.text,
           "relevance": max((h.relevance for h in hits), default=0.0),
           "cosine": max((h.cosine for h in hits), default=0.0),
           "coverage": max((h.coverage for h in hits), default=0.0),
           "top3_coverage": coverage(" ".join(h.text for h in hits[:3]), terms) if terms else 1.0}
    turn = engine and RagTurn(settings, qa.name, question.text, engine, chroma=chroma)
    if turn and turn.plan.used:
        for phrase in REFUSALS:
            row[f"P({phrase})"] = continuation_logprob(engine, turn.plan.messages, phrase)
        prompt = turn.plan.messages[-1]["content"]
        passages = prompt.split("\n\nQuestion:")[0].split("\n\n", 1)[-1]
        row["judge: no"] = judge_no(engine, passages, question.text)
    return row


# Higher means "refuse": retrieval evidence counts against refusing.
DIRECTION = {"relevance": -1, "cosine": -1, "coverage": -1, "top3_coverage": -1}


def separation(rows: list[dict], signal: str) -> dict:
    from sklearn.metrics import roc_auc_score

    scored = [r for r in rows if signal in r]
    y = [not r["answerable"] for r in scored]
    if len(set(y)) < 2:
        return {"auc": None}
    score = [DIRECTION.get(signal, 1) * r[signal] for r in scored]
    answerable = sorted((s for s, unans in zip(score, y) if not unans), reverse=True)
    # refuse above the score that refuses at most MAX_FALSE_REFUSALS of the answerable ones
    cut = answerable[int(MAX_FALSE_REFUSALS * len(answerable))] if answerable else 0.0
    caught = [s > cut for s, unans in zip(score, y) if unans]
    return {"auc": round(float(roc_auc_score(y, score)), 3),
            "refused_at_15pct_false": round(sum(caught) / len(caught), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--squad", type=int, nargs=2, default=(30, 30),
                        metavar=("ANSWERABLE", "UNANSWERABLE"))
    parser.add_argument("--qasper", type=int, nargs=2, default=(0, 0),
                        metavar=("ANSWERABLE", "UNANSWERABLE"))
    parser.add_argument("--model", help="chat model (default: the settings'); 'none': "
                                         "retrieval signals only, every question")
    args = parser.parse_args()
    settings = load_settings()
    chroma = store.client(settings)
    engine = None if args.model == "none" else get_engine(settings, model=args.model)
    embedder = get_embedder(settings)
    started = time.perf_counter()
    results = {}
    for qa, sizes in ((squad_set(), args.squad), (qasper_set(), args.qasper)):
        if engine is None:
            questions = [q for _, q in qa.questions]
        elif not sum(sizes):
            continue
        else:
            questions = subset(qa, *sizes)
        store_documents(chroma, embedder, qa.name, qa.documents)
        rows = [signals(settings, chroma, engine, qa, q) for q in questions]
        names = [k for k in rows[0] if k not in ("answerable", "question")]
        results[qa.name] = {"questions": len(rows),
                            "unanswerable": sum(not r["answerable"] for r in rows),
                            "signals": {n: separation(rows, n) for n in names}, "rows": rows}
    print(f"{'set':<8}{'signal':<32}{'AUC':>6}{'refused at 15% false':>22}")
    for name, result in results.items():
        for signal, got in result["signals"].items():
            auc = "-" if got["auc"] is None else f"{got['auc']:.2f}"
            refused = got.get("refused_at_15pct_false")
            print(f"{name:<8}{signal:<32}{auc:>6}{'-' if refused is None else f'{refused:.0%}':>22}")
    print(json.dumps({"engine": None if engine is None else engine.name,
                      "minutes": round((time.perf_counter() - started) / 60, 1),
                      "results": results}))


if __name__ == "__main__":
    main()

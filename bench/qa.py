"""The question-answering sets in ../shared/data/qa, as (name, passages, questions) with each
question's gold passages as indices."""

from __future__ import annotations

import json
from pathlib import Path

QA = Path(__file__).resolve().parents[2] / "shared" / "data" / "qa"
Dataset = list[tuple[str, list[str], list[tuple[str, set[int]]]]]


def qasper() -> Dataset:
    docs = []
    path = QA / "qasper_sample" / "qasper_train_first10_papers.json"
    for paper in json.loads(path.read_text()):
        paragraphs = [p for sec in paper["full_text"]["paragraphs"] for p in sec if p.strip()]
        where = {p: i for i, p in enumerate(paragraphs)}
        questions = []
        for q, answers in zip(paper["qas"]["question"], paper["qas"]["answers"]):
            gold = {where[e] for a in answers["answer"] for e in a["evidence"] if e in where}
            if gold:
                questions.append((q, gold))
        if questions:
            docs.append((f"qasper-{paper['id']}", paragraphs, questions))
    return docs


def squad() -> Dataset:
    article = json.loads((QA / "squad" / "dev-v2.0.json").read_text())["data"][0]
    paragraphs = [p["context"] for p in article["paragraphs"]]
    questions = [(qa["question"], {i}) for i, p in enumerate(article["paragraphs"])
                 for qa in p["qas"] if not qa["is_impossible"]]
    return [("squad-" + article["title"].lower(), paragraphs, questions)]

"""The question-answering sets in ../shared/data/qa, as (name, passages, questions) with each
question's gold passages as indices."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


# Questions with their answers, answerable or not, over documents stored as the Studio stores
# them (for bench.answers and bench.calibrate_relevance).
@dataclass
class Question:
    text: str
    answers: list[str]  # empty when unanswerable
    gold: set[int]  # paragraph indices (SQuAD: the passage) that hold the answer

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass
class Document:
    doc_id: str
    title: str
    paragraphs: list[str]


@dataclass
class QaSet:
    name: str
    documents: list[Document]  # SQuAD: one per passage; QASPER: one per paper
    questions: list[tuple[str, Question]]  # (doc_id of the gold document or "", question)


def squad_set() -> QaSet:
    """SQuAD 2.0's first dev article: each passage a document, answerable and not."""
    article = json.loads((QA / "squad" / "dev-v2.0.json").read_text())["data"][0]
    docs, questions = [], []
    for i, p in enumerate(article["paragraphs"]):
        doc_id = f"passage-{i:02d}"
        docs.append(Document(doc_id, article["title"], [p["context"]]))
        questions += [(doc_id, Question(qa["question"], sorted({a["text"] for a in qa["answers"]}),
                                        set() if qa["is_impossible"] else {0}))
                      for qa in p["qas"]]
    return QaSet("squad", docs, questions)


def qasper_set() -> QaSet:
    """The QASPER sample: each paper one document; a question is unanswerable when its first
    annotator says so, and its answers are every annotator's spans, free-form or yes/no."""
    path = QA / "qasper_sample" / "qasper_train_first10_papers.json"
    docs, questions = [], []
    for paper in json.loads(path.read_text()):
        paragraphs = [p for sec in paper["full_text"]["paragraphs"] for p in sec if p.strip()]
        where = {p: i for i, p in enumerate(paragraphs)}
        docs.append(Document(paper["id"], paper["title"], paragraphs))
        for q, labelled in zip(paper["qas"]["question"], paper["qas"]["answers"]):
            given = labelled["answer"]
            if given[0]["unanswerable"]:
                questions.append((paper["id"], Question(q, [], set())))
                continue
            answers = sorted({text for a in given if not a["unanswerable"]
                              for text in [*a["extractive_spans"], a["free_form_answer"],
                                           {True: "Yes", False: "No"}.get(a["yes_no"], "")]
                              if text.strip()})
            gold = {where[e] for a in given for e in a["evidence"] if e in where}
            if answers:
                questions.append((paper["id"], Question(q, answers, gold)))
    return QaSet("qasper", docs, questions)


def overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    """Whether the character span start:end shares text with any of `spans` (the gold
    paragraphs' spans, as store_documents returns them)."""
    return any(start < stop and begin < end for begin, stop in spans)


def store_documents(chroma, embedder, name: str, docs: list[Document], chunks_of=None
                    ) -> dict[str, list[tuple[int, int]]]:
    """A collection holding `docs` (paragraphs joined by blank lines, one page each), chunked
    by the Studio's chunker unless `chunks_of(text, title)` is given; returns each document's
    paragraph spans."""
    from core.rag import store
    from core.rag.chunking import chunk_pages

    collection = store.open_collection(chroma, name, embedder.model_name, 500, 50)
    spans = {}
    for doc in docs:
        text, spans[doc.doc_id] = "", []
        for p in doc.paragraphs:
            spans[doc.doc_id].append((len(text), len(text) + len(p)))
            text += p + "\n\n"
        chunks = (chunks_of or (lambda t, title: chunk_pages([t], title=title)))(text, doc.title)
        store.replace_document(collection, doc.doc_id, doc.doc_id, chunks,
                               embedder.embed([c.embedded_text for c in chunks]),
                               chroma.get_max_batch_size())
    return spans

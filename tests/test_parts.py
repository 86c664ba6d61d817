"""Questions that name a numbered part of a document, and the chunks under its heading."""

import pytest

from core.rag.bm25 import Bm25Index
from core.rag.parts import as_the_model_reads_it, asked_part, part_chunks


@pytest.mark.parametrize("question, part", [
    ("What is the first tip?", ("tip", 1)),
    ("Summarize the third tip.", ("tip", 3)),
    ("What does Tip 7 say?", ("tip", 7)),
    ("What is step two?", ("step", 2)),
    ("What does Article V require?", ("article", 5)),
    ("What is in the 12th chapter?", ("chapter", 12)),
    ("What is the first step of the algorithm?", ("step", 1)),
    ("What is a tip?", None),
    ("Which part of the model is frozen?", None),
    ("What is the first layer?", None),  # not a kind of part that headings number
])
def test_the_part_a_question_names(question, part):
    assert asked_part(question) == part


def index() -> Bm25Index:
    """Two copies of a paper of tips (a PDF and a web page), each tip two chunks."""
    metas = [{"doc_id": doc, "file": f"tips.{doc}", "title": "Ten Quick Tips", "page": 1,
              "chunk": 2 * n + c, "section": f"Tip {n}: Do thing {n}"}
             for doc in ("pdf", "html") for n in (1, 2, 3) for c in (0, 1)]
    metas.append({"doc_id": "law", "file": "law.txt", "title": "Act", "page": 1, "chunk": 0,
                  "section": "Article IV. Remedies"})
    return Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas],
                     [m["section"] for m in metas], metas)


def test_the_chunks_under_the_part_s_heading_in_the_document_retrieval_ranked_first():
    idx = index()
    ids = lambda positions: [idx.ids[i] for i in positions]  # noqa: E731
    assert ids(part_chunks(idx, ("tip", 2), ["html", "pdf"])) == ["html:4", "html:5"]
    assert ids(part_chunks(idx, ("tip", 2), ["pdf"])) == ["pdf:4", "pdf:5"]
    assert ids(part_chunks(idx, ("tip", 2), [], ("pdf",))) == ["pdf:4", "pdf:5"]
    assert ids(part_chunks(idx, ("article", 4), ["pdf"])) == ["law:0"]  # a roman number
    assert part_chunks(idx, ("tip", 9), ["pdf"]) == [] and part_chunks(idx, ("step", 1), []) == []


def test_asked_what_a_part_says_the_model_is_asked_beyond_its_title():
    """"What does Tip 7 say?" was answered with the tip's heading alone."""
    assert as_the_model_reads_it("What does tip 7 say?") == \
        "Summarize what Tip 7 says, beyond its title, in one sentence."
    assert as_the_model_reads_it("Summarize the third step.") == \
        "Summarize what Step 3 says, beyond its title, in one sentence."
    # what the part is, its heading answers; other questions are not parts'
    assert as_the_model_reads_it("What is the first tip?") is None
    assert as_the_model_reads_it("What does the paper say about overfitting?") is None

"""Questions for what a document is about read its abstract, else its first section."""

from core.rag import overview
from core.rag.bm25 import Bm25Index
from core.rag.front_matter import asks_about_document


def test_asking_what_a_document_is_about_is_put_to_the_model_as_a_summary():
    for question in ("What is this paper about?", "What is the BERT paper about?",
                     "What is QLoRA about?", "Give me an overview of the GAN paper.",
                     "Summarize this document.", "what is it all about"):
        assert overview.asks_what_it_is_about(question) and asks_about_document(question), question
    for question in ("What is attention about?", "What is Tip 3 about?",
                     "Summarize the tip about data leakage in one sentence.",
                     "What are the experiments about?", "What does the paper propose?"):
        assert not overview.asks_what_it_is_about(question), question
    # "The BERT paper about is Pre-training of Deep …", from BERT's abstract, where asked so
    assert overview.as_the_model_reads_it("What is the BERT paper about?") == \
        "Summarize the paper in one sentence."
    assert overview.as_the_model_reads_it("What is QLoRA about?") == "Summarize the document in one sentence."


def test_what_a_document_is_about_is_read_in_its_abstract_else_its_first_section():
    sections = {"p": ["", "", "Abstract", "Abstract", "1 Introduction"],
                "t": ["", "", *["Introduction"] * 4, "Tip 1: Decide"],
                "n": ["", ""]}
    metas = [{"doc_id": d, "file": f"{d}.pdf", "title": f"Title {d}", "chunk": c, "page": 1,
              "section": section} for d, secs in sections.items() for c, section in enumerate(secs)]
    # t's introduction ends with a sentence run on past a page break: a chunk of a few words
    texts = [f"text {m['doc_id']} {m['chunk']} " + ("" if (m["doc_id"], m["chunk"]) == ("t", 5)
                                                     else "words " * 40) for m in metas]
    idx = Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas], texts, metas)
    ids = lambda positions: [idx.ids[i] for i in positions]  # noqa: E731
    assert ids(overview.chunks(idx, "What is this paper about?", ["p", "t"], (), 3)) == \
        ["p:2", "p:3", "t:2"]
    # no abstract: the first section's opening, and its end (where a paper says what it
    # brings), not the stub after a page break
    assert ids(overview.chunks(idx, "What is this paper about?", ["t"], (), 3)) == \
        ["t:2", "t:3", "t:4"]
    assert ids(overview.chunks(idx, "What is this paper about?", ["t"], (), 2)) == ["t:2", "t:4"]
    # no section at all: the opening
    assert ids(overview.chunks(idx, "What is this paper about?", ["n"], (), 3)) == ["n:0"]


def test_other_questions_are_put_to_the_model_as_they_are():
    for question in ("Who wrote QLoRA?", "What is attention about?", "What does the paper propose?"):
        assert overview.as_the_model_reads_it(question) is None, question

"""Questions about a document itself are answered from its opening chunk."""

from core.rag.bm25 import Bm25Index
from core.rag.front_matter import asks_about_document, opening_chunks


def test_only_questions_about_who_wrote_a_document_or_its_title_ask_about_it():
    for question in ("Who wrote the BERT paper?", "Who are the authors of BERT?",
                     "who is the author", "What are the authors' affiliations?",
                     "Where do the authors of QLoRA work?", "What is the title of this paper?",
                     "List the names of the authors."):
        assert asks_about_document(question), question
    # QASPER asks about the content this way dozens of times
    for question in ("What do the authors propose?", "Which dataset do the authors use?",
                     "Who funded this contract?", "What is BERT?", "How was it written?"):
        assert not asks_about_document(question), question


def index(*docs: tuple[str, str, str]) -> Bm25Index:
    """Two chunks of each (doc_id, file, title)."""
    metas = [{"doc_id": d, "file": f, "title": t, "chunk": c, "page": 1, "section": ""}
             for d, f, t in docs for c in (0, 1)]
    return Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas],
                     [f"{m['title']} text {m['chunk']}" for m in metas], metas)


def test_the_opening_chunks_of_the_documents_named_or_else_retrieved():
    idx = index(("b", "1810.04805_BERT.pdf", "BERT: Pre-training of Deep Transformers"),
                ("g", "1406.2661_GAN.pdf", "Generative Adversarial Nets"),
                ("w", "sow.pdf", "Square One Statement of Work"))
    ids = lambda positions: [idx.ids[i] for i in positions]  # noqa: E731
    # Named in the title, or in the file name; retrieval's order does not matter then
    assert ids(opening_chunks(idx, "Who wrote the BERT paper?", ["g", "w"], (), 3)) == ["b:0"]
    assert ids(opening_chunks(idx, "Who are the authors of the GAN paper?", [], (), 3)) == ["g:0"]
    # Only capitalised words name a document: "work" is not "Statement of Work"
    assert ids(opening_chunks(idx, "Where do the authors of QLoRA work?", ["g", "w", "g"], (),
                              3)) == ["g:0", "w:0"]
    # Not named: the documents retrieval found, best first, at most `limit`, within the filter
    assert ids(opening_chunks(idx, "Who wrote this paper?", ["w", "b", "g"], (), 2)) == \
        ["w:0", "b:0"]
    assert ids(opening_chunks(idx, "Who wrote this paper?", ["w", "b"], ("b", "g"), 3)) == \
        ["b:0"]

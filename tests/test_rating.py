"""Rating retrieved chunks (core.rag.rating) inside one real paper, where every chunk shares
the question's words: best sentences, headings, definitions."""

import pytest

from core.rag.ingest import ingest_files
from core.rag.retrieval import RetrievalOptions, search
from core.settings import load_settings
from tests.conftest import shared

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    settings = load_settings(env={"STUDIO_DATA_DIR": str(tmp_path_factory.mktemp("data"))})
    ingest_files(settings, [shared("papers", "1810.04805_BERT.pdf")], "bert")
    return settings


def test_the_chunk_that_answers_leads_though_every_chunk_shares_the_question_words(bert):
    """Inside BERT's paper every chunk holds "BERT", "pre-training" and "tasks" (with the
    title), and whole-chunk cosines lie close together; the candidates rated again from their
    best sentence put "we pre-train BERT using two unsupervised tasks" first."""
    from core.rag import relevance

    settings = bert
    question = "What are the two pre-training tasks of BERT?"
    hits = search(settings, "bert", question, RetrievalOptions(k=40)).hits
    assert "two unsupervised tasks" in hits[0].text
    assert hits[0].section == "3.1 Pre-training BERT"
    rated_again = [h for h in hits if h.sentence_cosine is not None]
    assert len(rated_again) == relevance.RESCORED
    assert hits[0].sentence_cosine > hits[0].cosine
    start, end = hits[0].best_sentence
    assert hits[0].text[start:end] == ("Instead, we pre-train BERT using two unsupervised tasks, "
                                       "described in this section.")
    assert all((h.best_sentence is None) == (h.sentence_cosine is None) for h in hits)
    by_chunk = sorted(hits, key=lambda h: h.cosine, reverse=True)
    assert by_chunk.index(hits[0]) >= 3  # by its whole text it is not in the top 3


def test_a_heading_alone_at_the_foot_of_a_page_answers_nothing(bert):
    """Page 12 of BERT's paper ends with its appendix's heading, "A Additional Details for
    BERT": a chunk of its own, every word of it a question word, and 3rd for "What data was
    BERT pre-trained on?" at a "strong" 0.46, above the passage that names BooksCorpus."""
    hits = search(bert, "bert", "What data was BERT pre-trained on?", RetrievalOptions(k=40)).hits
    heading = next(h for h in hits if h.text == "A Additional Details for BERT")
    assert heading.section == heading.text and heading.relevance == 0.0
    assert heading.match == "weak" and heading.sentence_cosine is None
    assert hits.index(heading) > hits.index(next(h for h in hits if "BooksCorpus (800M" in h.text))


def test_asked_what_an_abbreviation_is_the_chunk_that_spells_it_out_comes_first(bert):
    """Most of BERT's chunks that write "MLM" use it; the one that spells it out is found by
    its brackets, placed first and said to be there as a definition, rated like the others."""
    from core.rag.definitions import RETRIEVER

    for question in ("What does MLM stand for?", "What is MLM?"):
        hits = search(bert, "bert", question, RetrievalOptions(k=3)).hits
        assert "“masked language model” (MLM)" in hits[0].text, question
        assert hits[0].retriever == RETRIEVER and hits[0].rank == 1 and hits[0].cosine > 0
        assert len(hits) == 3 and len({h.chunk_id for h in hits}) == 3
    plain = search(bert, "bert", "Which objective does MLM use?", RetrievalOptions(k=3)).hits
    assert RETRIEVER not in [h.retriever for h in plain]


def test_sentence_vectors_are_embedded_once_per_chunk_text():
    from core.rag import rating

    class Counting:  # a stand-in embedder: what is under test is the cache around it
        model_name = "counting"
        calls: list[list[str]] = []

        def embed(self, texts):
            self.calls.append(texts)
            return [[float(len(t)), 1.0] for t in texts]

    embedder = Counting()
    first = "A first sentence of six words. And a second one of six words."
    second = "Another chunk holds only this single sentence here."
    got = rating.sentence_vectors(embedder, [first, second, first])
    assert [len(rows) for rows in got] == [2, 1, 2]
    assert embedder.calls == [["A first sentence of six words.", "And a second one of six words.",
                               "Another chunk holds only this single sentence here."]]
    again = rating.sentence_vectors(embedder, [second, first])
    assert len(embedder.calls) == 1 and (again[1] == got[0]).all()


def test_best_sentence_shown_without_the_heading_it_was_embedded_with():
    from core.rag.rating import sentences, without_heading

    text = ("Abstract\n\nWe introduce a new language representation model called BERT. "
            "It is conceptually simple and empirically powerful.")
    first = sentences(text)[0]
    assert text[slice(*first)].startswith("Abstract")  # embedded with its heading
    shown = without_heading(text, first)
    assert text[slice(*shown)] == "We introduce a new language representation model called BERT."
    plain = "Masked LM comes first.\nIt is trained on masked tokens."
    assert without_heading(plain, (0, len(plain))) == (0, len(plain))  # no heading: unchanged

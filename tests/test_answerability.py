"""The refusal check over real documents in people's words: the shared Square One forms, the real
MiniLM, real Tika extraction and Chroma."""

import pytest

from core.rag import rating, relevance
from core.rag.embeddings import query_embedder
from core.rag.ingest import ingest_files
from core.rag.retrieval import search
from core.settings import load_settings
from tests.conftest import shared


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    settings = load_settings(env={"STUDIO_DATA_DIR": str(tmp_path_factory.mktemp("data"))})
    results = ingest_files(settings, [shared("documents", "square-one_offer-letter.docx"),
                                      shared("documents", "square-one_statement-of-work.docx")],
                           "forms")
    assert [r.status for r in results] == ["ok", "ok"]
    return settings


@pytest.mark.parametrize("question, asked, theirs", [
    ("What is the salary?", "salary", "compensation"),
    ("What is the job title?", "job", "work"),
    ("How often is the client invoiced?", "invoiced", "billing")])
def test_a_question_in_other_words_than_the_documents_is_not_refused(forms, question, asked,
                                                                      theirs):
    """The forms say "Compensation", "Work" and "Billing {monthly …}": spelled, the
    question's words are not there and the relevance of every hit was under the bar."""
    hits = search(forms, "forms", question).hits
    assert not relevance.answerable([rating.estimate(h, h.coverage) for h in hits])
    assert relevance.answerable([h.relevance for h in hits])
    assert hits[0].similar_words.get(asked) == theirs, hits[0].similar_words
    # the order is the relevance the marks show, and the words found by meaning raised it
    assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)
    assert hits[0].relevance > rating.estimate(hits[0], hits[0].coverage)
    assert [h.rank for h in hits] == [1, 2, 3]


def test_words_are_not_read_by_meaning_where_the_question_s_own_match(forms):
    hits = search(forms, "forms", "When does the employee start?").hits
    assert relevance.answerable([h.relevance for h in hits])
    assert not any(h.similar_words for h in hits)


@pytest.mark.parametrize("question", ["What is the capital of France?", "How do I bake bread?",
                                      "What is the population of Tokyo?",
                                      "What is the best programming language?"])
def test_a_question_the_documents_do_not_cover_is_still_refused(forms, question):
    hits = search(forms, "forms", question).hits
    assert not relevance.answerable([h.relevance for h in hits])
    assert all(h.match == "weak" for h in hits)


def test_a_word_is_matched_by_meaning_only_past_the_bar(forms):
    embedder = query_embedder(forms)
    assert rating.similar_words(embedder, ["paid"], ["pay", "supervisor"]) == {"paid": "pay"}
    assert rating.similar_words(embedder, ["bread"], ["company", "signature"]) == {}
    assert rating.similar_words(embedder, ["salary"], []) == {}
    assert rating.similar_words(embedder, ["paid", "bread"], ["company", "pay"]) == {"paid": "pay"}

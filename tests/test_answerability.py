"""The refusal check over real documents in people's words: the shared Square One forms, the real
MiniLM, real Tika extraction and Chroma."""

import pytest

from core.rag import answerability, relevance
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


@pytest.mark.parametrize("question", ["What is the salary?", "What is the job title?",
                                      "How often is the client invoiced?"])
def test_a_question_in_other_words_than_the_documents_is_not_refused(forms, question):
    """The letter says "Pay", "Position" and "Billing {monthly …}": spelled, the question's
    words are not there and the first test alone refused each question."""
    result = search(forms, "forms", question)
    assert not relevance.answerable([h.relevance for h in result.hits])
    assert answerability.answerable(forms, result, question)


@pytest.mark.parametrize("question", ["What is the capital of France?", "How do I bake bread?",
                                      "What is the population of Tokyo?",
                                      "What is the best programming language?"])
def test_a_question_the_documents_do_not_cover_is_still_refused(forms, question):
    assert not answerability.answerable(forms, search(forms, "forms", question), question)


def test_a_word_is_matched_by_meaning_only_past_the_bar(forms):
    embedder = query_embedder(forms)
    assert answerability.similar_count(embedder, ["paid"], ["pay", "supervisor"]) == 1
    assert answerability.similar_count(embedder, ["bread"], ["company", "signature"]) == 0
    assert answerability.similar_count(embedder, ["salary"], []) == 0
    assert answerability.similar_count(embedder, ["paid", "bread"], ["pay", "company"]) == 1

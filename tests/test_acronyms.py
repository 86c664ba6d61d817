"""Acronyms that a collection's titles spell are searched for spelled out as well."""

from core.rag.acronyms import expand, spelled_out
from core.rag.answer_notes import searched_for_note

TITLES = ["Generative Adversarial Nets",
          "Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks",
          "QLORA: Efficient Finetuning of Quantized LLMs",
          "LORA: LOW-RANK ADAPTATION OF LARGE LANGUAGE MODELS"]


def test_an_acronym_one_title_spells_is_followed_by_its_words():
    assert expand("What is a GAN?", TITLES) == "What is a GAN (Generative Adversarial Nets)?"
    assert expand("How are GANs trained?", TITLES) == \
        "How are GANs (Generative Adversarial Nets) trained?"
    # a hyphen's parts are words
    assert expand("Who wrote the RAG paper?", TITLES) == \
        "Who wrote the RAG (Retrieval-Augmented Generation) paper?"
    assert expand("Is RAG better than a GAN?", TITLES) == (
        "Is RAG (Retrieval-Augmented Generation) better than a GAN (Generative Adversarial "
        "Nets)?")


def test_other_words_stay_as_they_are():
    for question in (
        "What is NLP?",  # a title's word, not its initials
        "Which LLM does QLORA tune?",  # "LLMs" is in a title: its text uses the acronym
        "What is the gan?",  # not written as an acronym
        "What does BERT stand for?",  # no title spells it
    ):
        assert expand(question, TITLES) == question
    # spelled by two titles: which one is meant is not known
    assert expand("What is GAN?", [*TITLES, "Graph Attention Networks"]) == "What is GAN?"
    assert expand("What is a GAN?", []) == "What is a GAN?"


def test_a_question_with_its_acronyms_spelled_out_is_said_as_how_they_were_read():
    question = "Explain how RAG combines a retriever with a generator for GANs"
    searched = expand(question, TITLES)
    assert spelled_out(question, searched) == [("RAG", "Retrieval-Augmented Generation"),
                                               ("GAN", "Generative Adversarial Nets")]
    assert searched_for_note(question, searched) == (
        "read RAG as Retrieval-Augmented Generation, GAN as Generative Adversarial Nets")
    # a follow-up's rewrite is more than that: the query is said whole
    rewrite = "RAG (Retrieval-Augmented Generation) retriever"
    assert spelled_out("Which retriever does it use?", rewrite) == []
    assert searched_for_note("Which retriever does it use?", rewrite) == f"searched for: {rewrite}"
    assert searched_for_note(question, question) == ""

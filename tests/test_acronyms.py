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


def test_an_abbreviation_a_document_defines_is_searched_for_in_both_forms():
    """RAG's Table 1 says "NQ" where the question says "Natural Questions"."""
    from core.rag.definitions import defined, with_definitions

    text = ("We evaluate on Natural Questions (NQ) and TriviaQA (TQA), with next sentence "
            "prediction (NSP), on Amazon Mechanical Turk (MTurk), by large language models "
            "(LLMs). The Transformer (Vaswani et al.) and BERT (Devlin et al.) are no "
            "definitions, nor is the score (F1).")
    assert defined(text) == {"NQ": "Natural Questions", "NSP": "next sentence prediction",
                             "MTurk": "Mechanical Turk", "LLM": "large language models"}
    # one word ("TriviaQA (TQA)", "integer (Int8)"), or a table's row, is no phrase to look for
    assert defined("RoBbase (FT)* 125.0M 87.6 RoBlarge (LoRA) 0.8M, an integer (Int8)") == {}
    assert defined("by using a “masked language model” (MLM) objective") == \
        {"MLM": "masked language model"}
    found = {a: w.lower() for a, w in defined(text).items()}
    question = "What exact match score does RAG-Sequence get on Natural Questions?"
    searched = with_definitions(question, found)
    assert searched == "What exact match score does RAG-Sequence get on Natural Questions (NQ)?"
    assert spelled_out(question, searched) == [("", "NQ")]
    assert searched_for_note(question, searched) == "also searched for NQ"
    both = expand("Does a GAN do question answering?", TITLES)
    assert searched_for_note("Does a GAN do question answering?",
                             with_definitions(both, {"QA": "question answering"})) == \
        "read GAN as Generative Adversarial Nets; also searched for QA"
    assert with_definitions("How is next-sentence prediction trained?", found) == \
        "How is next-sentence prediction (NSP) trained?"
    # a follow-up's rewrite: only what the user said
    rewrite = "QLoRA, next sentence prediction, 48GB GPU largest model"
    assert with_definitions(rewrite, found, "How large a model fits on one GPU?") == rewrite
    assert with_definitions(rewrite, found, "And with next sentence prediction?") == \
        "QLoRA, next sentence prediction (NSP), 48GB GPU largest model"
    # not the other way round, and not where the question gives both
    for question in ("How is NSP trained?", "Do large language models (LLMs) read it?",
                     "What is the F1 on SQuAD?"):
        assert with_definitions(question, found) == question


def test_an_abbreviation_defined_two_ways_is_left_as_it_is():
    from core.rag.bm25 import Bm25Index
    from core.rag.definitions import abbreviations

    texts = ["a masked language model (MLM)", "masked language modelling (MLM) and Natural "
             "Questions (NQ)"]
    metas = [{"doc_id": "d", "file": "d.pdf", "title": "", "chunk": c, "page": 1, "section": ""}
             for c in (0, 1)]
    assert abbreviations(Bm25Index(["d:0", "d:1"], texts, metas)) == {"NQ": "natural questions"}


def test_abbreviations_do_not_keep_an_index_alive():
    """An older revision's index, let go of by the keyword cache, is freed."""
    import gc
    import weakref

    from core.rag.bm25 import Bm25Index
    from core.rag.definitions import abbreviations

    metas = [{"doc_id": "d", "file": "d.pdf", "title": "", "chunk": 0, "page": 1, "section": ""}]
    index = Bm25Index(["d:0"], ["Natural Questions (NQ)"], metas)
    assert abbreviations(index) == {"NQ": "natural questions"}
    assert abbreviations(index) is abbreviations(index)
    gone = weakref.ref(index)
    del index
    gc.collect()
    assert gone() is None


def test_a_chunk_that_writes_the_abbreviation_holds_the_words_the_question_spells_out():
    """Searched for as "… language models (LM)?", a chunk was rated on both: one that wrote
    "NLMs" or "language models" alone held part of the question, and the passage that answers
    "what classic language models are mentioned in the paper?" fell out of the top 3."""
    from core.rag.hits import Hit
    from core.rag.rating import Reading, in_context
    from core.rag.terms import coverage, question_terms

    reading = Reading(spelled_out={"NQ": "natural questions"})
    table = Hit(1, 0.0, "rag.pdf", 3, "r:1", "Model NQ TQA WQ CT\nRAG-Seq. 44.5 56.8 52.2 45.5",
                "dense", title="RAG", section="4 Results")
    prose = Hit(2, 0.0, "rag.pdf", 2, "r:2", "We use Natural Questions and TriviaQA.", "dense")
    terms = question_terms("What exact match does RAG get on Natural Questions?")
    assert "natural questions" in in_context(table, reading)
    assert in_context(prose, reading) == in_context(prose, Reading())
    assert coverage(in_context(table, reading), terms) > coverage(in_context(table, Reading()), terms)


def test_phrases_that_overlap_are_each_searched_for_once_at_most():
    from core.rag.definitions import with_definitions

    found = {"NL": "natural language", "XP": "language processing"}  # NL is put in first
    assert with_definitions("How is natural language processing done?", found) == \
        "How is natural language (NL) processing done?"

"""Question words as keyword search reads them: compounds, and coverage weighed by rarity."""

import pytest


def test_a_hyphenated_word_meets_its_joined_form_both_ways():
    """BERT's paper writes "BERTBASE"; its chunk that holds "L=12" ranked 5th for "How many
    layers does BERT-base have?" and the 0.5B answered "6"."""
    from core.rag.bm25 import Bm25Index
    from core.rag.terms import coverage, question_terms

    terms = question_terms("How many layers does BERT-base have?")
    assert {"bert", "base", "bertbas", "layer"} <= terms
    text = "BERTBASE has 12 layers"
    assert coverage(text, terms) > coverage(text, terms - {"bertbas"}) > 0
    texts = ["the rate of BERT layers", "BERTBASE has 12 layers", "finetuning BERT"]
    metas = [{"doc_id": "d", "file": "f", "title": "", "section": ""}] * 3
    index = Bm25Index(["a", "b", "c"], texts, metas)
    assert index.search("BERT-base layers", 3)[0][0] == 1
    assert index.search("fine-tuning", 3)[0][0] == 2


def test_an_underscored_word_meets_its_joined_form():
    """The Transformer paper writes "dmodel = 512" (its subscript lost); a question says
    "d_model", which had been one word that no chunk holds."""
    from core.rag.bm25 import Bm25Index
    from core.rag.terms import coverage, highlight_spans, question_terms

    terms = question_terms("What is the dimensionality of the model, d_model?")
    assert {"model", "dmodel"} <= terms and "d_model" not in terms
    assert coverage("we use dmodel = 512 for the model", terms) > coverage("the model", terms)
    metas = [{"doc_id": "d", "file": "f", "title": "", "section": ""}] * 2
    index = Bm25Index(["a", "b"], ["the model is large", "dmodel = 512"], metas)
    assert index.search("d_model", 2)[0][0] == 1
    assert ("d_model", True) in highlight_spans("set d_model to 512", "What is d_model?")


def test_a_letter_or_short_word_standing_alone_is_a_word():
    """"How is the LoRA matrix B initialized?": LoRA's "a random Gaussian initialization for A
    and zero for B" was 5th, under a chunk on "STS-B … instead of the usual initialization",
    and the 0.5B answered from that one."""
    from core.rag.bm25 import Bm25Index
    from core.rag.terms import coverage, highlight_spans, question_terms

    assert question_terms("How is the LoRA matrix B initialized?") == {"lora", "matrix", "b", "initi"}
    assert {"qa", "nq", "r"} <= question_terms("Is rank r's QA on NQ reported?")
    # not the pieces of a name, a possessive or "e.g.", nor numbers and versions
    assert question_terms("Is BERT's STS-B F1, e.g. on SQuAD v2.0, reported?") == {
        "bert", "sts", "stsb", "squad", "report"}
    assert question_terms("We've measured it.") == {"measur"}
    texts = ["We use a random Gaussian initialization for A and zero for B.",
             "For STS-B we start from the MNLI checkpoint instead of the usual initialization."]
    metas = [{"doc_id": "d", "file": "f", "title": "", "section": ""}] * 2
    terms = question_terms("How is matrix B initialized?")
    assert coverage(texts[0], terms) > coverage(texts[1], terms)
    assert Bm25Index(["a", "b"], texts, metas).search("How is matrix B initialized?", 2)[0][0] == 0
    marked = [piece for piece, hit in highlight_spans(texts[0] + " " + texts[1], "matrix B") if hit]
    assert marked == ["B."]  # not "STS-B", where search does not read "B" either



def test_an_abbreviation_s_plural_is_read_as_the_abbreviation():
    """A search for "language models (LM)" covered less of the chunks that write "LMs": the
    stemmer reads that "lms"."""
    from core.rag.terms import coverage, highlight_spans, question_terms

    assert {"lm", "gpu", "llm"} <= question_terms("Which LMs, GPUs and LLMs?")
    assert coverage("Neural LMs are costly", question_terms("What is an LM?")) == 1.0
    assert ("LMs", True) in highlight_spans("Neural LMs are costly", "Which LM?")


def test_a_rare_question_word_counts_for_more_of_the_coverage():
    """"Which optimizer was used to train the Transformer?": a chunk with "optimizer" answers
    it sooner than one with "used" and "training", which most chunks hold."""
    from core.rag.bm25 import Bm25Index
    from core.rag.terms import coverage, question_terms

    texts = ["We used the Adam optimizer.", "We used it for training.",
             "Training used eight GPUs.", "The model we used in training."]
    metas = [{"doc_id": "d", "file": "f", "title": "", "section": "", "chunk": i, "page": 1}
             for i in range(len(texts))]
    index = Bm25Index([str(i) for i in range(len(texts))], texts, metas)
    terms = question_terms("Which optimizer was used in training?")
    weights = index.idf(terms | {"absent"})
    assert weights["optim"] > weights["train"] > 0
    # a word no chunk holds is more often the asker's own than the subject: an average weight
    assert weights["absent"] == pytest.approx((weights["optim"] + weights["use"]
                                               + weights["train"]) / 3)
    # unweighted, both chunks hold two of the three words
    assert coverage(texts[0], terms) == coverage(texts[1], terms) == 2 / 3
    assert coverage(texts[0], terms, weights) > 2 / 3 > coverage(texts[1], terms, weights)
    assert coverage("optimizer used training", terms, weights) == 1.0
    assert Bm25Index([], [], []).idf(terms) == {}
    # auxiliaries are no content, however seldom papers write them
    assert question_terms("Does the paper report macro F1? Did it?") == {"paper", "report", "macro"}

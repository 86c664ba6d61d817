"""Questions about what an abbreviation stands for, and the chunk that spells it out."""

from core.rag.bm25 import Bm25Index
from core.rag.definitions import asked_abbreviation, defines, defining_chunk, spells


def test_the_abbreviation_a_question_asks_the_meaning_of():
    for question, asked in (("What is NF4?", "NF4"), ("What is the NF4 data type?", "NF4"),
                            ("What does MLM stand for?", "MLM"), ("What are GANs?", "GAN"),
                            ("what's RAG", "RAG"), ("Define NSP.", "NSP"),
                            ("What does QLoRA mean?", "QLoRA"), ("What is LoRA?", "LoRA"),
                            ("What is the MLM objective?", "MLM"),
                            ("What is NF4 in QLoRA?", "NF4"),
                            ("What is MLM in the BERT paper?", "MLM")):
        assert asked_abbreviation(question) == asked, question
    # no abbreviation, or a question about something else that names one
    for question in ("What is attention?", "What is the BLEU score of the Transformer?",
                     "How does LoRA work?", "Which objective does MLM use?",
                     "What is LoRA's rank?", "What is the rank of LoRA?", "What is LoRA Rank?",
                     "What is the BLEU score of the Transformer?", "What is the rank in LoRA?",
                     "What is the difference between LoRA, QLoRA and full finetuning in memory?"):
        assert asked_abbreviation(question) is None, question


def test_words_spell_an_abbreviation_in_order_from_the_start_of_a_word():
    assert spells("LoRA", "we propose Low-Rank Adaptation")
    assert spells("NF4", "(a) 4-bit NormalFloat")
    assert spells("MLM", "by using a “masked language model”")
    assert not spells("LoRA", "RoBlarge")  # a table row: "RoBlarge (LoRA) 0.8M …"
    assert not spells("NSP", "Next Prediction")
    assert not spells("GAN", "")


# As Tika extracts QLoRA's abstract and LoRA's results table
ABSTRACT = ("QLORA introduces a number of innovations to save memory without sacrificing "
            "performance: (a) 4-bit NormalFloat (NF4), a new data type that is information "
            "theoretically optimal for normally distributed weights")
TABLE = "RoBbase (FT)* 125.0M 87.6 94.8 RoBlarge (LoRA) 0.8M 90.6±.2 96.2±.5"
USES = "Results are shown in Table 4 where we see that NF4 with double quantization recovers"


def test_a_chunk_defines_an_abbreviation_by_the_words_in_its_clause_before_the_brackets():
    assert defines(ABSTRACT, "NF4")
    assert not defines(TABLE, "LoRA") and not defines(TABLE, "FT")
    assert not defines(USES, "NF4")
    # the other ways round: the words in brackets after it, or it at the end of the brackets
    assert defines("we use NF4 (4-bit NormalFloat) for the weights", "NF4")
    assert defines("The retriever (Dense Passage Retriever [26], henceforth DPR) provides", "DPR")
    assert defines("We propose Low-Rank Adaptation, or LoRA, which freezes", "LoRA")
    assert not defines("Adapters, prefixes, or LoRA can be used", "LoRA")
    # a citation in brackets spells nothing
    assert not defines("LoRA (Hu et al., 2021) and BERT (Devlin et al., 2019)", "LoRA")
    assert not defines("BERT (Devlin et al., 2019)", "BERT")
    # the words must stand right before it, in the same clause
    assert not defines("Normal floats are common. Our (NF4) type", "NF4")
    assert not defines("Normal Float and many other words come before it here (NF4)", "NF4")


def test_the_first_definition_in_the_document_titled_by_it_or_else_retrieved_first():
    metas, texts = [], []
    for doc, title, chunks in (
            ("q", "QLoRA: Efficient Finetuning", [USES, "Low-rank Adapters (LoRA) as in"]),
            ("l", "LoRA: Low-Rank Adaptation", [TABLE, "USES LoRA", "Low-Rank Adaptation (LoRA)"]),
            ("n", "Another paper", [USES, "then 4-bit NormalFloat (NF4)", ABSTRACT])):
        for n, text in enumerate(chunks):
            metas.append({"doc_id": doc, "file": f"{doc}.pdf", "title": title, "chunk": n,
                          "page": 1, "section": ""})
            texts.append(text)
    index = Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas], texts, metas)

    def found(abbreviation, ranked, doc_ids=()):
        at = defining_chunk(index, abbreviation, ranked, doc_ids)
        return None if at is None else index.ids[at]

    assert found("LoRA", ["q", "l"]) == "l:2"  # the paper named so, though retrieved second
    assert found("LoRA", ["q", "l"], doc_ids=("q",)) == "q:1"  # within the filter
    assert found("NF4", []) == "n:1"  # its first definition
    assert found("FT", ["l"]) is None

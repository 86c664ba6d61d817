"""Which documents a question names: by a name a document introduces, its title, an acronym
its title spells, or its file name's words."""

from core.rag.bm25 import Bm25Index
from core.rag.naming import introduction, known_as, named_documents
from tests.test_front_matter import index


def test_a_question_about_the_content_names_the_documents_it_is_about():
    """"Which optimizer was used to train the Transformer?" is about Attention's paper, whose
    "5.3 Optimizer" never says "Transformer"; over the seven shared papers LoRA's table
    of hyperparameters answered it ("AdamW")."""
    docs = {"b": ("1810.04805_BERT.pdf", "BERT: Pre-training of Deep Bidirectional Transformers",
                  "We introduce a new language representation model called BERT."),
            "a": ("1706.03762_Attention.pdf", "Attention Is All You Need",
                  "We propose a new simple network architecture, the Transformer, based solely "
                  "on attention mechanisms."),
            "l": ("2106.09685v2.pdf", "LoRA: Low-Rank Adaptation of Large Language Models",
                  "Optimizer AdamW for every Transformer we adapt.")}
    metas = [{"doc_id": d, "file": f, "title": t, "chunk": c, "page": 1, "section": ""}
             for d, (f, t, _) in docs.items() for c in (0, 1)]
    idx = Bm25Index([f"{m['doc_id']}:{m['chunk']}" for m in metas],
                    [docs[m["doc_id"]][1 + m["chunk"]] for m in metas], metas)
    assert named_documents(idx, "Which optimizer was used to train the Transformer?") == ["a"]
    assert named_documents(idx, "How many layers does BERT-base have?") == ["b"]
    assert named_documents(idx, "Is LoRA better than BERT?") == ["b", "l"]  # equally named
    assert named_documents(idx, "What is the Wq matrix?") == []  # named by none
    assert named_documents(idx, "Is LoRA better than BERT?", ("b", "l")) == []  # by all
    assert named_documents(idx, "Which optimizer trained the Transformer?", ("b", "l")) == ["b"]
    # what a document introduces is its context as its title is, unless the title says it
    assert known_as(idx) == {"a": "transformer"}


def test_an_acronym_a_title_spells_names_the_document():
    """"What generator model does RAG use?": the RAG paper's title spells it, its text says it
    of every method; "LLMs" is a word of QLoRA's title, not what LoRA's spells."""
    docs = {"r": ("2005.11401v4.pdf", "Retrieval-Augmented Generation for Knowledge-Intensive "
                  "NLP Tasks"),
            "l": ("2106.09685v2.pdf", "LoRA: Low-Rank Adaptation of Large Language Models"),
            "q": ("2305.14314v1.pdf", "QLoRA: Efficient Finetuning of Quantized LLMs")}
    metas = [{"doc_id": d, "file": f, "title": t, "chunk": 0, "page": 1, "section": ""}
             for d, (f, t) in docs.items()]
    idx = Bm25Index([m["doc_id"] for m in metas], [m["title"] for m in metas], metas)
    assert named_documents(idx, "What generator model does RAG use?") == ["r"]
    assert named_documents(idx, "How are LLMs fine-tuned in 4 bits?") == ["q"]


def test_a_document_is_named_in_lower_case_by_the_words_of_its_file_name():
    """Two or more of them in a row: "the statement of work" is square-one_statement-of-work."""
    files = index(("w", "square-one_statement-of-work.docx", "Statement of Work"),
                  ("o", "square-one_offer-letter.docx", "Offer Letter"),
                  ("d", "otm-distributor-agreement.txt", "DISTRIBUTOR AGREEMENT"))
    assert named_documents(files, "Who are the parties to the statement of work?") == ["w"]
    assert named_documents(files, "Is there a non-compete clause in the offer letter?") == ["o"]
    assert named_documents(files, "How can the distributor agreement be terminated?") == ["d"]
    assert named_documents(files, "What work does the contractor do?") == []  # one word
    assert named_documents(files, "What is the salary?") == []


def test_the_sentence_that_introduces_a_name_the_question_uses():
    text = ("Abstract\n\nThe dominant models are recurrent. We propose a new simple network "
            "architecture, the Transformer, based solely on attention. Experiments show it.")
    start, end = introduction(text, "Who wrote the Transformer paper?")
    assert text[start:end] == ("We propose a new simple network architecture, the Transformer, "
                               "based solely on attention.")
    first = "We introduce a new model called BERT, which stands for Bidirectional Encoder"
    assert introduction(first, "Who are the authors of BERT?") == (0, len(first))
    # names are compared whole, and only those the question uses
    assert introduction(text, "Who wrote the Transformers paper?") is None
    assert introduction("We propose a method called SC-LoRA.", "Who wrote LoRA?") is None
    assert introduction("We propose a method called SC-LoRA.", "Who wrote SC-LoRA?") == (0, 35)

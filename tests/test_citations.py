"""Citations: where a mark belongs, the marks counted, a sentence's source inferred or read from
its words, refusals."""

from core.rag.citations import _ends_sentence, cited_ranks, holding_words, infer_citations, is_refusal
from core.settings import load_settings
from tests.conftest import hit


def test_sentence_ends_where_a_mark_belongs():
    assert _ends_sentence("BERT uses masked LM.") and _ends_sentence('It said "yes."')
    assert not _ends_sentence("Steps:\n1.") and not _ends_sentence("as in Devlin et al.")
    assert not _ends_sentence("BERT uses masked LM") and not _ends_sentence("e.g.")
    # An initial: the 0.5B's "Ian J." got a mark, and the answer went astray after it
    assert not _ends_sentence("Ian J.") and not _ends_sentence("by (J.")
    assert _ends_sentence("It is made by Goodfellow.")


def test_cited_ranks_only_counts_chunks_the_model_was_given():
    used = [hit(1, "a"), hit(2, "b")]
    assert cited_ranks("Yes [2], see also [1, 2] and [7].", used) == [1, 2]
    assert cited_ranks("No marks here.", used) == []
    assert is_refusal("I don't know.") and not is_refusal("It is known.")


def test_inferred_citations_follow_meaning(studio_env):
    used = [hit(1, "Cats are small domesticated felines that purr and chase mice."),
            hit(2, "The central bank raised interest rates to fight inflation.")]
    answer = "Interest rates went up because the bank wanted to curb inflation. Cats purr when they are happy."
    links = infer_citations(load_settings(), answer, used)
    assert [link["rank"] for link in links] == [2, 1]
    # a sentence's numbers outweigh its wording: passage 2 alone holds the 24
    used = [hit(1, "BERT-large has many layers of Transformer blocks, more than BERT-base."),
            hit(2, "Table 6: BERT-large size, the number of layers L = 24 and hidden size H = 1024.")]
    links = infer_citations(load_settings(), "BERT-large has 24 layers of Transformer blocks.",
                            used)
    assert [link["rank"] for link in links] == [2]


def test_the_passage_that_clearly_holds_most_of_a_sentences_words_is_its_source():
    passages = {1: "Task #1: Masked LM … Task #2: Next Sentence Prediction (NSP)",
                2: "There are two steps in BERT: pre-training and fine-tuning.",
                3: "Some tokens are masked."}
    sentence = "The two tasks are: 1. Masked LM 2. Next Sentence Prediction [2]"
    assert holding_words(sentence, passages, [1, 2, 3]) == [1]
    assert holding_words(sentence, passages, [2, 3]) == [2, 3]  # no clear winner among them
    assert holding_words("It is a model.", passages, [1, 2, 3]) == [1, 2, 3]
    # every new word of a short answer in one passage, and none in any other
    assert holding_words("Next Sentence Prediction.", passages, [1, 2, 3]) == [1]
    # a short answer's words held by several: the best of those that hold them all
    assert holding_words("Masked tokens.", passages, [1, 2, 3]) == [3]  # 1 says "Masked" only
    assert holding_words("Masked LM.", passages, [1, 2, 3]) == [1]
    assert holding_words("Masked.", passages, [3, 1]) == [3]
    # the question's own words say nothing of where the answer came from
    steps = "BERT has two steps: pre-training and fine-tuning."
    assert holding_words(steps, passages, [1, 2, 3]) == [2]
    assert holding_words(steps, passages, [1, 2, 3],
                         "What are BERT's pre-training and fine-tuning steps?") == [1, 2, 3]

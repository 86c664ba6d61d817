"""Questions that ask for an amount, and the passages that give one (core.rag.quantities)."""

import pytest

from core.rag.hits import Hit
from core.rag.placing import amount_within_k
from core.rag.quantities import amount_given, counted

HEADS = "How many attention heads does the Transformer use?"


@pytest.mark.parametrize("question, things, size", [
    (HEADS, {"attent", "head"}, False),
    ("How many questions are in the dataset?", {"question"}, False),
    ("How big is seed lexicon used for training?", {"seed", "lexicon"}, True),
    ("How large is raw corpus used for training?", {"raw", "corpus"}, True),
    ("What is the number of layers in BERT-large?", {"layer"}, False),
])
def test_what_an_amount_question_counts(question, things, size):
    asked = counted(question)
    assert asked is not None and asked.things == things and asked.after_too is size


@pytest.mark.parametrize("question", ["What is the capital of Peru?", "Who wrote BERT?",
                                      "Why does attention work?"])
def test_other_questions_count_nothing(question):
    assert counted(question) is None


@pytest.mark.parametrize("text, gives", [
    ("In this work we employ h = 8 parallel attention layers, or heads.", True),
    ("We use eight attention heads.", True),  # in words
    ("The Transformer uses multi-head attention in three different ways:", False),  # ways
    ("as described in Section 3.2.2. While single-head attention is worse", False),  # a section
    ("We use 8. Attention heads help.", False),  # another sentence's heads
    ("Each layer has two multi-head blocks.", False),  # a compound is read whole
])
def test_a_passage_gives_an_amount_of_what_is_counted(text, gives):
    assert (amount_given(text, counted(HEADS)) is not None) is gives


def test_a_size_may_follow_the_thing():
    corpus = "a Japanese web corpus of about 100 million sentences"
    assert amount_given(corpus, counted("How large is raw corpus used for training?")) is not None
    assert amount_given(corpus, counted("How many corpus files are there?")) is None


def hit(rank: int, text: str) -> Hit:
    return Hit(rank=rank, score=1.0, doc="paper.pdf", page=1, chunk_id=f"c{rank}", text=text,
               retriever="both")


def test_a_passage_giving_the_amount_takes_the_last_place_where_none_before_it_does():
    talk = [hit(i, f"Multi-head attention, part {chr(96 + i)}.") for i in range(1, 5)]
    counts = hit(5, "We employ h = 8 parallel attention layers, or heads.")
    placed = amount_within_k([*talk, counts], counted(HEADS), k=3)
    assert [h.chunk_id for h in placed] == ["c1", "c2", "c5", "c3", "c4"]
    already = [talk[0], counts, *talk[1:]]
    assert amount_within_k(already, counted(HEADS), k=3) == already  # nothing moves


ENCODER = "How many layers does its encoder have?"
DECODER = ("Decoder: The decoder is also composed of a stack of N = 6 identical layers. In "
           "addition to the two sub-layers in each encoder layer, the decoder inserts a third.")
STACK = "Encoder: The encoder is composed of a stack of N = 6 identical layers."


def test_the_question_s_other_words_tell_which_amount_is_asked_for():
    asked = counted(ENCODER)
    assert asked is not None and asked.about == {"encod"}
    assert amount_given(DECODER, asked) == 0
    assert amount_given(STACK, asked) == 1
    assert amount_given("The encoder has residual connections.", asked) is None


def test_a_passage_giving_the_amount_with_more_of_the_question_takes_the_last_place():
    talk = [hit(1, "The Transformer uses stacked self-attention for the encoder and decoder."),
            hit(2, "Similar to the encoder, we employ residual connections."),
            hit(3, DECODER), hit(4, "Residual dropout is applied."), hit(5, STACK)]
    placed = amount_within_k(talk, counted(ENCODER), k=3)
    assert [h.chunk_id for h in placed] == ["c1", "c2", "c5", "c3", "c4"]
    # asked without a word that tells them apart, the decoder's amount is as good
    assert amount_within_k(talk, counted("How many layers are there?"), k=3) == talk


BERT_SIZES = ("In this work, we denote the number of layers (i.e., Transformer blocks) as L, the "
              "hidden size as H, and the number of self-attention heads as A. We primarily "
              "report results on two model sizes: BERTBASE (L=12, H=768, A=12) and BERTLARGE "
              "(L=24, H=1024, A=16).")
LAST_FOUR = "For the feature-based approach, we concatenate the last 4 layers of BERT."


def test_an_amount_given_to_a_symbol_that_counts_the_things_is_one():
    layers, heads = counted("How many layers does BERT have?"), counted(
        "How many attention heads does BERT use?")
    # one more than its sentence's words of the question ("BERT" begins "BERTBASE")
    assert amount_given(BERT_SIZES, layers) == 2 and amount_given(LAST_FOUR, layers) == 1
    assert amount_given(BERT_SIZES, heads) is not None  # A, the number of self-attention heads
    assert amount_given(BERT_SIZES, counted("How many epochs are used?")) is None
    # a symbol is a capital letter: "as a function" names none
    assert amount_given("the number of layers as a function of size; a = 3 here.", layers) is None
    assert amount_given("#L = the number of layers. We try L = 6 and L = 12.", layers) == 1


def test_of_the_passages_giving_an_amount_the_one_with_most_of_the_question_is_placed():
    talk = [hit(i, f"BERT uses layers of attention, part {chr(96 + i)}.") for i in range(1, 4)]
    placed = amount_within_k([*talk, hit(4, LAST_FOUR), hit(5, BERT_SIZES)],
                             counted("How many layers does BERT have?"), k=3)
    assert [h.chunk_id for h in placed] == ["c1", "c2", "c5", "c3", "c4"]


def test_a_number_the_passages_give_only_counting_something_else_is_told():
    from core.rag.quantities import other_counts

    layers = "How many layers does BERT have?"
    read = ("In this table, we report the average Dev Set accuracy from 5 random restarts. "
            + BERT_SIZES)
    assert other_counts(layers, "5 [1]", read) == ["5"]
    assert other_counts(layers, "BERT has 12 layers. [1]", read) == []  # given to L
    assert other_counts(layers, "7 [1]", read) == []  # not read at all: unread_numbers says so
    assert other_counts("What do they report?", "5 [1]", read) == []  # no amount asked
    # a section number is told once, by grounding.reference_numbers
    assert other_counts(HEADS, "3.2 [2]", "Multi-Head Attention as described in section 3.2. "
                        "It runs in parallel.") == []
    # "examples" may be anything: a count in a sentence about what they are of is one of them
    examples = "How many examples are in the SQuAD training data?"
    squad = ("We fine-tune for 3 epochs. SQuAD v1.1 is a collection of 100k crowdsourced "
             "question/answer pairs (Rajpurkar et al., 2016).")
    assert other_counts(examples, "100k [1]", squad) == []
    assert other_counts(examples, "3 [1]", squad) == ["3"]
    assert other_counts(layers, "100k [1]", squad) == ["100"]  # layers are only layers



def test_an_amount_given_beside_the_answer_s_for_the_same_thing_is_told():
    from core.rag.quantities import other_amounts

    heads = "How many attention heads does BERT have?"
    read = ("We denote the number of layers (i.e., Transformer blocks) as L, the hidden size as "
            "H, and the number of self-attention heads as A. We primarily report results on two "
            "model sizes: BERTBASE (L=12, H=768, A=12, Total Parameters=110M) and BERTLARGE "
            "(L=24, H=1024, A=16, Total Parameters=340M).")
    assert other_amounts(heads, "16 [1]", read) == ["12"]
    assert other_amounts(heads, "BERTBASE has 12 and BERTLARGE 16. [1]", read) == []  # both
    assert other_amounts("How many layers does BERT have?", "12 [1]", read) == ["24"]
    # a number of something else: the passage's amounts of heads are the ones to check
    assert other_amounts(heads, "110 [1]", read) == ["12", "16"]
    # the amount before another amount counts that one: 6 layers, not 6 heads
    assert other_amounts(heads, "8 [1]", "Each of the 6 layers has 8 attention heads.") == []
    assert other_amounts(heads, "8 [1]", "The base model uses eight heads, the big one 16 "
                                         "heads.") == ["16"]
    assert other_amounts(heads, "8 [1]", "We use 8 heads. The big model uses 16 heads.") == []
    # the answer's number counts something else, beside an amount of what is asked
    steps = ("We train with batch size of 256 sequences (256 sequences * 512 tokens = 128,000 "
             "tokens/batch) for 1,000,000 steps.")
    assert other_amounts("How many steps was BERT pre-trained for?", "128,000 [1]", steps) == [
        "1,000,000"]
    assert other_amounts("How many steps was BERT pre-trained for?", "1,000,000 [1]", steps) == []
    assert other_amounts("What do they use?", "8 [1]", "8 heads and 16 heads.") == []
    # a change goes from one to the other: not two of them
    memory = ("QLoRA reduces the average memory requirements of finetuning a 65B parameter "
              "model from >780GB of GPU memory to <48GB without degrading performance.")
    assert other_amounts("How much GPU memory does QLoRA need to fine-tune a 65B model?",
                         "48GB [1]", memory) == []
    # a size or a time names no thing its amounts are of
    assert other_amounts("How long did the big model train?", "3.5 days [1]",
                         "The big models were trained for 300,000 steps (3.5 days).") == []


def test_an_amount_for_what_the_question_does_not_name_is_not_told():
    from core.rag.quantities import other_amounts

    read = "We compare BERTBASE (110M parameters) and BERTLARGE (340M parameters)."
    assert other_amounts("How many parameters does BERT-base have?", "110M [1]", read) == []
    assert other_amounts("How many parameters does BERT have?", "110M [1]", read) == ["340M"]
    # "A=12, Total Parameters=110M": the parameters' amount follows their word
    table = "BERTBASE (L=12, H=768, A=12, Total Param-eters=110M) and BERTLARGE (L=24, A=16, " \
            "Total Parameters=340M)."
    assert other_amounts("How many parameters does BERT-base have?", "110M [1]", table) == []
    corpus = "For the pre-training corpus we use the BooksCorpus (800M words) and English " \
             "Wikipedia (2,500M words)."
    assert other_amounts("How many words does the BooksCorpus have?", "800M [1]", corpus) == []

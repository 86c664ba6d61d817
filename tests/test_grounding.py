"""Numbers an answer gives that nothing the model read holds (core.rag.grounding)."""

import pytest

from core.rag.answer_notes import caveats
from core.rag.answers import Answer
from core.rag.export import to_markdown
from core.rag.grounding import numbers_read, reference_numbers, unread_numbers

CORPUS = ("We train on a Japanese web corpus of about 100 million sentences. The encoder is a "
          "stack of six identical layers; the big model reaches 28.40 BLEU with 65B parameters "
          "and 1,006 reviews.")


@pytest.mark.parametrize("answer", [
    "100 million sentences [1]",
    "100,000,000 [1]",  # the passage's "100 million", in digits
    "6 layers [2]",  # "six identical layers"
    "28.4 [1]",
    "65 billion parameters",  # "65B"
    "1006 reviews",
    "1. Masked LM 2. Next sentence prediction [1]",  # item numbers, not facts
    "It has six layers.",  # a number in words is not checked
    "The documents do not say.",
])
def test_numbers_the_passages_give_in_any_form_are_read(answer):
    assert unread_numbers(answer, CORPUS) == []


def test_a_number_the_passages_do_not_give_is_named_as_written():
    assert unread_numbers("1,000,000 [1]", CORPUS) == ["1,000,000"]
    assert unread_numbers("It has 12 layers and 12 heads, 100 million sentences.", CORPUS) == ["12"]
    assert unread_numbers("1000000 [1] or 10.5", CORPUS) == ["1000000", "10.5"]


def test_what_a_text_gives_includes_words_and_scales():
    assert {"100", "100000000", "6", "28.4", "65", "65000000000", "1006"} <= numbers_read(CORPUS)


def test_the_check_is_kept_with_a_saved_answer_and_said_wherever_the_answer_is_shown():
    saved = {"answer": "1,000,000 [1]", "sources": [], "cited": [1],
             "unread_numbers": ["1,000,000"]}
    again = Answer.from_json("How large is the raw corpus?", saved)
    assert again.unread_numbers == ["1,000,000"]
    assert again.to_json()["unread_numbers"] == ["1,000,000"]
    [note] = caveats(again)
    assert note == ("The answer gives 1,000,000, which none of the passages the model read "
                    "holds: check it against the sources.")
    assert note in to_markdown("papers", [again])
    older = Answer.from_json("How large is the raw corpus?", {"answer": "1,000,000 [1]"})
    assert older.unread_numbers == [] and caveats(older) == []  # saved before the check
    every = Answer.from_json("How large?", {**saved, "restates_question": True,
                                            "only_weak_matches": True,
                                            "unread_numbers": ["7", "8", "9"]})
    restated, weak, figures = caveats(every)
    assert "only repeats" in restated and "only a weak match" in weak
    assert "gives 7, 8 and 9, which" in figures and "check them against" in figures
    assert every.to_json()["only_weak_matches"]


PAPER = ("An effect we counteract with Multi-Head Attention as described in section 3.2 [12]. "
         "Table 3 reports 28.4 BLEU; see Eq. (4) and pp. 12-14. We employ h = 8 heads.\n\n"
         "3.2.3 Applications of Attention in our Model\n\nThe Transformer uses it in 2 ways.")


@pytest.mark.parametrize("answer, references", [
    ("3.2 [2]", ["3.2"]),  # the section the passage points to, not a count of heads
    ("12 heads", ["12"]),  # a citation's number
    ("3 and 4", ["3", "4"]),
    ("14", ["14"]),
    ("3.2.3 Applications of Attention in our Model [2]", ["3.2.3"]),  # a heading, copied
    ("2 ways", []),
    ("Assessed by F1-score and GPT-3 [1]", []),  # names, not numbers
    ("8 heads [1]", []),
    ("28.4 BLEU", []),
    ("Section 3.2 describes 8 heads.", []),  # the answer's own reference is no figure
])
def test_a_number_the_passages_hold_only_as_a_reference_is_named(answer, references):
    assert reference_numbers(answer, PAPER) == references
    assert unread_numbers(answer, PAPER) == []  # said once, not also as unread


def test_a_reference_only_number_is_said_beside_the_answer():
    answer = Answer.from_json("How many heads?", {"answer": "3.2 [2]",
                                                  "reference_numbers": ["3.2"]})
    assert answer.to_json()["reference_numbers"] == ["3.2"]
    assert caveats(answer) == ["The answer gives 3.2, which the passages the model read hold only "
                               "as a section, table or citation number: check it against the "
                               "sources."]


def test_another_amount_beside_the_answer_s_is_said_beside_the_answer():
    answer = Answer.from_json("How many attention heads does BERT have?",
                              {"answer": "16 [1]", "other_amounts": ["12"]})
    assert answer.to_json()["other_amounts"] == ["12"]
    [note] = caveats(answer)
    assert note == ("The passage the answer's number comes from also gives 12 attention heads: "
                    "check which one the question means.")
    assert note in to_markdown("papers", [answer])
    two = Answer.from_json("How many layers does the encoder have?",
                           {"answer": "6 [1]", "other_amounts": ["12", "24"]})
    assert "also gives 12 and 24 layers:" in caveats(two)[0]


def test_a_number_read_only_from_a_table_s_rows_is_said_beside_the_answer():
    """The 0.5B answered "What F1 does BERT get on SQuAD v1.1?" with 81.2, a cell of another
    row of the right table: a number a table alone gives is said to be one."""
    from core.rag.grounding import table_numbers

    read = ("Question: What F1 does BERT get on SQuAD v1.1?\n"
            "Passage 1 (BERT, page 6 · 4.2 SQuAD v1.1):\n"
            "System Dev Test EM F1 EM F1\n\n"
            "BERTBASE (Single) 80.8 88.5 - -\n"
            "BERTLARGE (Single) 84.1 90.9 - -\n"
            "Table 2: SQuAD 1.1 results. The BERT ensemble is 7x systems.\n"
            "Passage 2 (BERT, page 5):\n"
            "We fine-tune for 3 epochs with a batch size of 32 and reach 90.9 on the dev set.\n"
            "BERTLARGE (L=24, H=1024, A=16, Total Parameters=340M).")
    assert table_numbers("88.5 [1]", read) == ["88.5"]
    assert table_numbers("BERT gets an F1 of 84.1 on SQuAD 1.1 [1]", read) == ["84.1"]
    # also given in prose, in the caption, the question or nowhere: no note
    assert table_numbers("90.9 [2]", read) == table_numbers("7 [1]", read) == []
    assert table_numbers("32 [2]", read) == table_numbers("1.1 [1]", read) == []
    assert table_numbers("99.9 [1]", read) == []
    assert table_numbers("24 [2]", read) == []  # a sentence thick with figures is no row
    answer = Answer.from_json("What F1 does BERT get on SQuAD v1.1?",
                              {"answer": "88.5 [1]", "table_numbers": ["88.5"]})
    assert answer.to_json()["table_numbers"] == ["88.5"]
    assert caveats(answer) == ["The answer gives 88.5, which the passages the model read give "
                               "only in a table, where a row or column is easily misread: check "
                               "it against the sources."]
    # said once: as a count of something else where it is one
    counted = Answer.from_json("How many layers?", {"answer": "5 [1]", "table_numbers": ["5"],
                                                    "other_counts": ["5"]})
    assert len(caveats(counted)) == 1 and "as a count of" in caveats(counted)[0]

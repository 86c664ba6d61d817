"""Answers that only say the question back, as the default 0.5B wrote them to QASPER questions
(bench/results/answers-qasper-all-amx-2026-12-02.json), against answers that tell something."""

import pytest

from core.rag.answers import Answer
from core.rag.export import to_markdown
from core.rag.restatement import restates


@pytest.mark.parametrize("question, answer", [
    ("How does their model learn using mostly raw data?",
     "Their model learns using mostly raw data. [1]"),
    ("What are the aesthetic emotions formalized?", "Aesthetic emotions are formalized. [1]"),
    ("What are the specific tasks being unified?", "Unified tasks [1]"),
    ("Which word embeddings are analysed?", "Word embeddings [1]"),
    ("What aspects have been compared between various language models?",
     "Various language models have been compared. [1]"),
    ("What was the name of Tancred's nephew?", "Tancred's nephew [2]"),
    ("How do we measure it?", "We've measured it. [1]"),  # "ve" of "we've" is no name
])
def test_an_answer_made_of_the_questions_words_restates_it(question, answer):
    assert restates(question, answer)


@pytest.mark.parametrize("question, answer", [
    # new words, or a number the question does not have
    ("What is the seed lexicon?",
     "The seed lexicon consists of 15 positive words and 15 negative words. [1]"),
    ("How big is seed lexicon used for training?", "15 [1]"),
    ("How large is raw corpus used for training?", "742 k [1]"),
    # names of two letters, which keyword terms leave out
    ("Which weight matrices does LoRA adapt?", "LoRA adapts Wq and Wv. [1]"),
    ("What are the specific tasks being unified?",
     "The specific tasks being unified are question answering based clinical text "
     "structuring. [1]"),
    # a yes/no question is answered by saying it back, a choice by naming one option
    ("Does their detection tool work better than human detection?",
     "Their detection tool works better than human detection. [2]"),
    ("What turn out to be more important high volume or high quality data?", "High volume [1]"),
    # nothing but short or stop words, and a refusal
    ("Is the explanation from saliency map correct?", "No."),
    ("Who are the two parties?", "The documents do not say."),
    ("What is it?", ""),
])
def test_an_answer_that_tells_something_does_not(question, answer):
    assert not restates(question, answer)


def test_the_flag_is_kept_with_a_saved_answer_and_said_in_its_markdown():
    saved = {"answer": "Word embeddings [1]", "sources": [], "cited": [1],
             "restates_question": True}
    again = Answer.from_json("Which word embeddings are analysed?", saved)
    assert again.restates_question and again.to_json()["restates_question"]
    assert "only repeats the question's words" in to_markdown("papers", [again])
    older = Answer.from_json("Which word embeddings are analysed?",
                             {"answer": "Word embeddings [1]", "sources": [], "cited": [1]})
    assert not older.restates_question  # saved before the flag: not flagged after the fact

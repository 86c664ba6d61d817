"""Answers that only say the question back ("How does their model learn using mostly raw
data?" -> "Their model learns using mostly raw data. [1]"): they read like answers and tell
nothing, so the Chat page says so beside them.

The default 0.5B wrote 7 such answers to the 45 answerable QASPER questions of
bench/answers.py (bench/results/answers-qasper-all-amx-2026-12-02.json). For 6 of them, none of
the top 3 passages held the gold evidence. Rewording the prompt did not stop them (asked not to
repeat the question, for the context's facts, or with no request for brevity; work/scratch runs
of session 25), nor did making it write on after the sentence. So the answer is kept and
flagged, not replaced.
"""

from __future__ import annotations

import re

from core.rag.citations import is_refusal, without_marks
from core.rag.terms import question_terms, stop_words

# A yes/no question is answered by saying it back ("Does their tool work better?" -> "Their
# tool works better."), and a question that offers a choice by naming one of its options.
_YES_NO = re.compile(r"^\s*(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|"
                     r"should|shall|may|might|must)\b", re.IGNORECASE)
_CHOICE = re.compile(r"\bor\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Keyword terms leave out words of one or two letters, which in an answer can be its names:
# "LoRA adapts Wq and Wv." to "Which weight matrices does LoRA adapt?" was taken for a
# restatement.
_SHORT_WORD = re.compile(r"(?<!['’])\b[^\W\d_]{2}\b")  # not "ve" of "we've"


def _short_words(text: str) -> set[str]:
    return {w.lower() for w in _SHORT_WORD.findall(text)} - stop_words()


def restates(question: str, answer: str) -> bool:
    """Whether `answer` names nothing that `question` does not: every content word it has is
    one of the question's (stemmed, as keyword search reads them) and it has no number or
    short word of its own. An answer of only short or stop words ("Yes", "No") names nothing
    and is not one."""
    text = without_marks(answer)
    if (not text or is_refusal(text) or _YES_NO.match(question) or _CHOICE.search(question)
            or set(_NUMBER.findall(text)) - set(_NUMBER.findall(question))
            or _short_words(text) - _short_words(question)):
        return False
    said = question_terms(text)
    return bool(said) and said <= question_terms(question)

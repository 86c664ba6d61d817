"""Numbers in an answer that nothing the model read holds: the default 0.5B, having read "a
Japanese web corpus of about 100 million sentences", answered "How large is raw corpus used for
training?" with "1000000". A figure reads as a fact, so the answer says when none of its
passages (nor the question) gives it.

Over bench/answers.py's runs of 2026-12-04, every such answer was wrong (6 of 6, QASPER), where
answers whose numbers the passages hold were right about as often as the rest.
"""

from __future__ import annotations

import re

from core.rag import tables
from core.rag.citations import numbers, without_marks, written_numbers
from core.rag.layout import is_heading

WORD_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
WORD_NUMBERS.update({w: 10 * i for i, w in enumerate(
    "thirty forty fifty sixty seventy eighty ninety".split(), 3)})
WORD_NUMBERS.update(hundred=100, thousand=1000, dozen=12, single=1, once=1, twice=2)
_WORD = re.compile(r"\b(" + "|".join(WORD_NUMBERS) + r")\b", re.IGNORECASE)
# "100 million sentences" may be given back as 100,000,000; "65B" as 65 billion
_SCALED = re.compile(r"(\d+(?:[.,]\d+)*)\s*(thousand|million|billion|trillion|[kKMB])\b")
# Numbers that point elsewhere in a document rather than count anything: "Section 3.2",
# "Table 3", "Eq. (4)", "pp. 12-14", a citation's "[38, 2, 9]"
_REFERENCE = re.compile(
    r"(?:\b(?:sections?|tables?|figures?|equations?|appendix|appendices|chapters?|algorithms?"
    r"|theorems?|lemmas?|propositions?|page)\s*|\b(?:sec|tab|figs?|eqs?|pp?)\.\s*|§\s*)"
    r"\(?\d+(?:\.\d+)*(?:\s*[-–,]\s*\d+(?:\.\d+)*)*\)?"
    r"|\[\d+(?:\s*[-–,]\s*\d+)*\]", re.IGNORECASE)
_REFERENCE_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_NAME_DIGITS = re.compile(r"[A-Za-z]-?\d+(?:[.,]\d+)*")
# A numbered heading's number: "3.2.3 Applications of Attention in our Model"
_HEADING_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)*)\.?(?=\s+\S)")
_SENTENCE_END = re.compile(r"[A-Za-z)\]][.!?][\"”’)]?$")
_SCALES = {"thousand": 10**3, "k": 10**3, "million": 10**6, "m": 10**6, "billion": 10**9,
           "b": 10**9, "trillion": 10**12}


def canonical(number: str) -> str:
    """"28.40" and "28.4" alike (thousands separators are already gone)."""
    return number.rstrip("0").rstrip(".") if "." in number else number


def numbers_read(text: str) -> set[str]:
    """The numbers `text` gives, in digits, in words ("six layers") or scaled ("100
    million"), each as `numbers` writes it."""
    found = {canonical(n) for n in numbers(text)}
    found |= {str(WORD_NUMBERS[w.lower()]) for w in _WORD.findall(text)}
    for value, scale in _SCALED.findall(text):
        try:
            scaled = float(value.replace(",", "")) * _SCALES[scale.lower()]
        except ValueError:  # "1.2.3 million": a version, not an amount
            continue
        found.add(canonical(f"{scaled:.6f}"))
    return found


def unread_numbers(answer: str, read: str) -> list[str]:
    """The numbers the answer writes in digits (as it writes them) that `read`, everything the
    model was given, does not hold in any form; a number written in words is not checked."""
    given = numbers_read(read) | _pointers(read)
    return [n for n in numbers_given(answer) if canonical(n.replace(",", "")) not in given]


def reference_numbers(answer: str, read: str) -> list[str]:
    """The numbers the answer gives (not as a reference itself) that `read` holds only as a
    section, table, figure or citation number. Asked "How many attention heads does the
    Transformer use?", the 0.5B answered "3.2 [2]", from "Multi-Head Attention as described in
    section 3.2", where the paper's "h = 8 parallel attention layers, or heads" was not among
    the passages it read; asked again in a conversation, it gave the heading "3.2.3
    Applications of Attention in our Model [2]"."""
    amounts, pointers = numbers_read(without_references(read)), _pointers(read)
    return [n for n in numbers_given(answer)
            if (c := canonical(n.replace(",", ""))) in pointers and c not in amounts]


def table_numbers(answer: str, read: str) -> list[str]:
    """The numbers the answer gives that `read` holds only in a table's rows, where the 0.5B
    often takes the wrong row or column: asked for BERT's F1 on SQuAD 1.1 with its table in
    view, it gave 81.2 (a figure of that table's other rows), and for RoBERTa's learning rate
    with LoRA, 5.00E-06 from the GPT-3 column of the next table (3 of 6 table questions of a
    walkthrough over the papers were answered from the wrong cell)."""
    lines = read.split("\n")
    rows = [_is_row(line) for line in lines]
    in_rows = set().union(*(numbers_read(line) for line, row in zip(lines, rows) if row))
    elsewhere = set().union(*(numbers_read(line) for line, row in zip(lines, rows) if not row))
    return [n for n in numbers_given(answer)
            if (c := canonical(n.replace(",", ""))) in in_rows and c not in elsewhere]


def _is_row(line: str) -> bool:
    """A table's row, not a sentence thick with figures: "BERTLARGE (L=24, H=1024, A=16, Total
    Parameters=340M)." reads as a row to core.rag.tables, but it ends as a sentence does."""
    return tables.is_table_row(line) and not _SENTENCE_END.search(line.rstrip())


def _pointers(text: str) -> set[str]:
    """The numbers of `text`'s references and of its numbered headings."""
    found = {canonical(n) for m in _REFERENCE.finditer(text)
             for n in _REFERENCE_NUMBER.findall(m.group())}
    return found | {canonical(m.group(1)) for line in text.split("\n")
                    if (m := _HEADING_NUMBER.match(line)) and is_heading(line)}


def without_references(text: str) -> str:
    """`text` less its references and its headings' numbers."""
    return "\n".join(_HEADING_NUMBER.sub(" ", line, count=1) if is_heading(line) else line
                     for line in _REFERENCE.sub(" ", text).split("\n"))


def numbers_given(answer: str) -> list[str]:
    """The numbers an answer gives as facts: not its [n] marks, its own references, nor the
    digits of a name ("F1-score", "GPT-3")."""
    text = _NAME_DIGITS.sub(" ", _REFERENCE.sub(" ", without_marks(answer)))
    return list(dict.fromkeys(written_numbers(text)))

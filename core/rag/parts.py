"""Questions that name a numbered part of a document ("What is the first tip?", "Summarize step
3", "What does Article V say?") and the chunks under that part's heading ("Tip 1: Decide
whether deep learning is appropriate for your problem").

"First" is in no heading and "tip" in every one: asked "What is the first tip?" over the sample
paper, retrieval led with its acknowledgements, and the 0.5B answered with a funding grant.
"""

from __future__ import annotations

import re

from core.rag.bm25 import Bm25Index
from core.rag.layout import PART_KINDS

RETRIEVER = "part"  # how a hit placed first here says where it came from (Hit.retriever)
# the kinds of part a heading names, as core.rag.layout reads them
_KINDS = "|".join(kind.lower() for kind in PART_KINDS)
_ORDINALS = {w: n for n, w in enumerate("first second third fourth fifth sixth seventh eighth "
                                        "ninth tenth eleventh twelfth".split(), 1)}
_NUMBERS = {w: n for n, w in enumerate("one two three four five six seven eight nine ten "
                                       "eleven twelve".split(), 1)}
_ASKS = re.compile(
    rf"\b(?P<ordinal>{'|'.join(_ORDINALS)}|\d{{1,3}}(?:st|nd|rd|th))\s+(?P<kind>{_KINDS})\b"
    rf"|\b(?P<kind_first>{_KINDS})\s+(?:no\.?\s*|number\s+|#)?"
    rf"(?P<number>\d{{1,3}}|{'|'.join(_NUMBERS)}|[ivxl]{{1,6}})\b", re.IGNORECASE)
_HEADING = re.compile(rf"^\s*(?P<kind>{_KINDS})\s+(?P<number>\d{{1,3}}|[IVXL]{{1,6}})\b",
                      re.IGNORECASE)
_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50}


def asked_part(question: str) -> tuple[str, int] | None:
    """The numbered part a question names: ("tip", 1) for "What is the first tip?" and for
    "What does Tip 1 say?"; ("article", 5) for "Article V"; None where it names none."""
    found = _ASKS.search(question)
    if not found:
        return None
    if found["ordinal"]:
        word = found["ordinal"].lower()
        return found["kind"].lower(), _ORDINALS.get(word) or int(word[:-2])
    number = _number(found["number"])
    return (found["kind_first"].lower(), number) if number else None


# Asking what a part says, not what it is: "What does Tip 7 say?" was answered with the tip's
# heading alone.
_SAYS = re.compile(r"\b(?:says?|said|summari[sz]e|explain|describe|recommends?|advises?|about|"
                   r"tell)\b", re.IGNORECASE)


def as_the_model_reads_it(question: str) -> str | None:
    """The question as the prompt puts it, where it asks what a numbered part says: "Summarize
    what Tip 7 says, beyond its title, in one sentence." ("What does Tip 7 say?" was answered
    with its heading; so was "What does Tip 7 advise, in one sentence?", over five tips asked);
    None for other questions ("What is the first tip?" is answered by the heading)."""
    part = asked_part(question)
    if part is None or not _SAYS.search(question):
        return None
    return f"Summarize what {part[0].capitalize()} {part[1]} says, beyond its title, in one sentence."


def part_chunks(index: Bm25Index, part: tuple[str, int], ranked_docs: list[str],
                doc_ids: tuple[str, ...] = ()) -> list[int]:
    """Positions in `index` of the chunks under the heading of `part`, in their order, in the
    document retrieval ranked highest of those that have it (`ranked_docs`, best first; of
    `doc_ids`, else all); none where no heading names it."""
    kind, number = part
    under: dict[str, list[tuple[int, int]]] = {}  # doc id -> (chunk, position)
    for i, m in enumerate(index.metas):
        heading = _HEADING.match(m.get("section", ""))
        if (heading and heading["kind"].lower() == kind and _number(heading["number"]) == number
                and (not doc_ids or m["doc_id"] in doc_ids)):
            under.setdefault(m["doc_id"], []).append((int(m["chunk"]), i))
    doc = next((d for d in ranked_docs if d in under), next(iter(sorted(under)), None))
    return [i for _, i in sorted(under[doc])] if doc else []


def _number(written: str) -> int | None:
    """12 for "12", "twelve" and "XII"; None for what is none of them."""
    word = written.lower()
    if word.isdigit():
        return int(word)
    if word in _NUMBERS:
        return _NUMBERS[word]
    values = [_ROMAN[c] for c in word if c in _ROMAN]
    if len(values) != len(word):
        return None
    return sum(-v if v < after else v for v, after in zip(values, [*values[1:], 0]))

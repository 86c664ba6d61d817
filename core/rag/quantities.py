"""Questions that ask for an amount ("How many attention heads does the Transformer use?") and
the passages that give one for the thing counted ("we employ h = 8 parallel attention layers,
or heads").

Retrieval ranks passages by meaning and shared words, and a passage that talks about attention
heads at length outranks the one sentence that counts them: over the seven shared papers, the
Transformer paper's counting passage came 5th for the heads question, and with k = 3 the 0.5B
answered "3.2", a section number, from the passages it was given.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from core.rag.grounding import WORD_NUMBERS, without_references
from core.rag.terms import content_words

# "How many / much …" counts what follows the amount ("8 parallel attention layers"); "How big
# / large / long …" may also give it after the thing ("a corpus of about 100 million sentences")
_ASKS = re.compile(
    r"^\s*(?:how\s+(?:(many|much)|big|large|long|small)"
    r"|what\s+(?:is|was|are|were)\s+the\s+(?:(number)|size|amount)\s+of)"
    r"\s+(?:(?:is|are|was|were|does|do|did)\s+)?(?:the\s+)?(.*)", re.IGNORECASE)
_PHRASE_END = re.compile(
    r"\b(?:is|are|was|were|does|do|did|has|have|had|can|could|will|would|used|in|on|for|of|"
    r"to|by|with|from|that|which|there|their|they|it|its)\b|[?,;(]", re.IGNORECASE)
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*[%\w]*|[\w-]+|[.;:!?]")  # a sentence's end a token too
_AMOUNT = re.compile(r"\d+(?:[.,]\d+)*(?:[kKMBG%]|[KMGT]B)?")
NEAR = 4  # words from an amount to a word of what is counted


class Counted(NamedTuple):
    things: frozenset[str]  # the stems of what is counted
    after_too: bool  # a size: the amount may also follow the thing
    # the question's other words ("its encoder" of "How many layers does its encoder have?"):
    # which of two amounts of layers, the encoder's or the decoder's, is the one asked for
    about: frozenset[str] = frozenset()


def counted(question: str) -> Counted | None:
    """What an amount question counts ("attention heads" -> {"attent", "head"}); None when the
    question asks for no amount."""
    found = _ASKS.match(question)
    if not found:
        return None
    things = frozenset(content_words(_PHRASE_END.split(found.group(3), maxsplit=1)[0]))
    about = frozenset(content_words(found.group(3))) - things
    return Counted(things, not (found.group(1) or found.group(2)), about) if things else None


def amount_given(text: str, asked: Counted) -> int | None:
    """Where `text` gives an amount of what `asked` counts (an amount with one of its words at
    most NEAR words after it, or, for a size, before it, in the same sentence), how many of
    the question's other words the sentence that gives it holds (the most, of several); None
    where it gives none."""
    best = None
    for sentence in _sentences(_TOKEN.findall(without_references(text))):  # "Section 3.2.2."
        for i, token in enumerate(sentence):
            if not (_AMOUNT.fullmatch(token) or token.lower() in WORD_NUMBERS):
                continue
            near = sentence[i + 1:i + 1 + NEAR] + (
                sentence[max(0, i - NEAR):i] if asked.after_too else [])
            # a compound read whole: "two sub-layers" are no amount of layers
            if any(set(content_words(t.replace("-", ""))) & asked.things for t in near):
                said = set(content_words(" ".join(sentence)))
                best = max(best or 0, len(asked.about & said))
    return best


def _sentences(tokens: list[str]) -> list[list[str]]:
    """The tokens split where a sentence ends."""
    sentences: list[list[str]] = [[]]
    for token in tokens:
        if token in ".;:!?":
            sentences.append([])
        else:
            sentences[-1].append(token)
    return [s for s in sentences if s]

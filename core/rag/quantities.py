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


def counted(question: str) -> Counted | None:
    """What an amount question counts ("attention heads" -> {"attent", "head"}); None when the
    question asks for no amount."""
    found = _ASKS.match(question)
    if not found:
        return None
    things = frozenset(content_words(_PHRASE_END.split(found.group(3), maxsplit=1)[0]))
    return Counted(things, not (found.group(1) or found.group(2))) if things else None


def gives_amount(text: str, asked: Counted) -> bool:
    """Whether `text` gives an amount of what `asked` counts: an amount with one of its words
    at most NEAR words after it (or, for a size, before it), in the same sentence."""
    tokens = _TOKEN.findall(without_references(text))  # "Section 3.2.2. While single-head …"
    for i, token in enumerate(tokens):
        if not (_AMOUNT.fullmatch(token) or token.lower() in WORD_NUMBERS):
            continue
        after = _until_stop(tokens[i + 1:i + 1 + NEAR])
        before = _until_stop(tokens[max(0, i - NEAR):i][::-1]) if asked.after_too else []
        if any(set(content_words(t)) & asked.things for t in after + before):
            return True
    return False


def _until_stop(tokens: list[str]) -> list[str]:
    """The tokens before the first that ends a sentence."""
    stops = [i for i, t in enumerate(tokens) if t in ".;:!?"]
    return tokens[:stops[0]] if stops else tokens

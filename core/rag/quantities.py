"""Questions that ask for an amount ("How many attention heads does the Transformer use?") and
the passages that give one for the thing counted ("we employ h = 8 parallel attention layers,
or heads").

Retrieval ranks passages by meaning and shared words, and a passage that talks about attention
heads at length outranks the one sentence that counts them: over the seven shared papers, the
Transformer paper's counting passage came 5th for the heads question, and with k = 3 the 0.5B
answered "3.2", a section number, from the passages it was given.

The answer's number is then read against those passages: one they give only as a count of
something else (`other_counts`), and the other amounts given beside it (`other_amounts`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from core.rag.grounding import WORD_NUMBERS, canonical, numbers_given, numbers_read, without_references
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
# A symbol that stands for a number of things, as papers define one: "we denote the number of
# layers (i.e., Transformer blocks) as L", "#L = the number of layers"; then "BERTBASE (L=12,
# H=768, A=12)" gives 12 layers, which no word of what is counted comes near.
_SYMBOL_NAMED = re.compile(
    r"\bnumber\s+of\s+((?:[\w-]+\s+){0,2}?[\w-]+)\s*(?:\([^)]{0,60}\)\s*)?"
    r"(?:as|by)\s+#?((?-i:[A-Z]))\b"
    r"|#?\b((?-i:[A-Z]))\s*(?:=|denotes|is)\s*(?:the\s+)?number\s+of\s+((?:[\w-]+\s+){0,2}?[\w-]+)",
    re.IGNORECASE)
_RAW_SENTENCE = re.compile(r"(?<!\d)[.;:!?](?!\d)")  # where _sentences splits a sentence's tokens
# What any counted thing may be called: "How many examples are in the SQuAD training data?" is
# answered by "SQuAD v1.1 is a collection of 100k crowdsourced question/answer pairs"
_ANY_THING = frozenset(content_words("examples samples instances items entries records"))


class Counted(NamedTuple):
    things: frozenset[str]  # the stems of what is counted
    after_too: bool  # a size: the amount may also follow the thing
    # the question's other words ("its encoder" of "How many layers does its encoder have?"):
    # which of two amounts of layers, the encoder's or the decoder's, is the one asked for
    about: frozenset[str] = frozenset()
    named: str = ""  # what is counted, in the question's words: "attention heads"


def counted(question: str) -> Counted | None:
    """What an amount question counts ("attention heads" -> {"attent", "head"}); None when the
    question asks for no amount."""
    found = _ASKS.match(question)
    if not found:
        return None
    named = _PHRASE_END.split(found.group(3), maxsplit=1)[0].strip()
    things = frozenset(content_words(named))
    about = frozenset(content_words(found.group(3))) - things
    return Counted(things, not (found.group(1) or found.group(2)), about, named) if things else None


def amount_given(text: str, asked: Counted) -> int | None:
    """Where `text` gives an amount of what `asked` counts (an amount with one of its words at
    most NEAR words after it, or, for a size, before it, in the same sentence), how many of
    the question's other words the sentence that gives it holds (the most, of several), one
    more where the amount is given to a symbol the text defines as the number of those things;
    None where it gives none."""
    return max((_about(sentence, asked) + defined for sentence, defined
                in _giving_sentences(without_references(text), asked)), default=None)


def other_counts(question: str, answer: str, read: str) -> list[str]:
    """For a question asking how many of something, the numbers the answer gives that `read`
    (everything the model was given) holds only in sentences that name none of those things
    and give no amount of them: asked "How many layers does BERT have?", the 0.5B answered "5
    [1]", from "we report the average Dev Set accuracy from 5 random restarts". A sentence
    that names them, or follows one that does, counts however it gives the number ("2,714
    question-answer pairs" for "How many questions…?"; for "examples", "items"…, a sentence
    that names what they are of: "SQuAD … 100k … question/answer pairs"): over the 14 questions of SQuAD's
    sample and QASPER that ask for an amount, none of the answers was flagged, where a check
    held to the amounts that retrieval places first flagged three right answers. A number
    `read` lacks is grounding.unread_numbers's to say."""
    asked = counted(question)
    if asked is None:
        return []
    text = without_references(read)
    sentences = _RAW_SENTENCE.split(text)
    # things any count may be called are named by what the question says they are of
    names = asked.things | asked.about if asked.things <= _ANY_THING else asked.things
    # and the sentence after one that names them: "Our dataset is annotated based on … It
    # contains 17,833 sentences" for "How big is the dataset…?"
    naming = {i + after for i, s in enumerate(sentences) for after in (0, 1)
              if set(content_words(s.replace("-", " "))) & names}
    counts = numbers_read(" ".join([*(sentences[i] for i in sorted(naming) if i < len(sentences)),
                                    *(s for s, _ in _giving_sentences(text, asked))]))
    held = numbers_read(text)  # a section or citation number is reference_numbers's to say
    return [n for n in numbers_given(answer)
            if (c := canonical(n.replace(",", ""))) in held and c not in counts]


def other_amounts(question: str, answer: str, read: str) -> list[str]:
    """For a question asking how many of something, the amounts of it (as written) that a
    sentence of `read` gives beside a number the answer takes from that sentence:
    - beside another amount of it: asked "How many attention heads does BERT have?", the 0.5B
      answered "16", from "BERTBASE (L=12, H=768, A=12, …) and BERTLARGE (L=24, H=1024, A=16,
      …)", where the reader most likely meant BERTBASE's 12. Two amounts of one thing in one
      sentence are most often two models, settings or parts, and a short answer gives one of
      them without saying which. An amount is left out where what leads up to it holds fewer
      of the question's other words than what leads up to the answer's: asked of "BERT-base",
      110M parameters, not BERTLARGE's 340M; and where the sentence goes from one to the
      other, that is a change, not two of them ("from >780GB of GPU memory to <48GB");
    - beside a number that counts something else: asked "How many steps was BERT pre-trained
      for?", it answered "128,000", from "(256 sequences * 512 tokens = 128,000 tokens/batch)
      for 1,000,000 steps".
    Not for a size or a time ("How long did the big model train?"), whose words name no thing
    its amounts are of: over six of the shared papers "3.5 days" was set beside "300,000" from
    "trained for 300,000 steps (3.5 days)"."""
    asked = counted(question)
    if asked is None or asked.after_too:
        return []
    given = {_value(n) for n in numbers_given(answer)}
    others: dict[str, None] = {}
    for sentence, amounts in _amounts_by_sentence(without_references(read), asked):
        tokens = _TOKEN.findall(sentence)
        # the word before each of the answer's numbers here: none where it gives none of them
        went = {tokens[i - 1].lower() if i else "" for i, token in enumerate(tokens)
                if _is_amount(token) and _value(token) in given}
        if not went:
            continue
        # none where the answer's number is of something else: then every amount of X counts
        most = max((_about(lead, asked) for amount, lead in amounts if _value(amount) in given),
                   default=0)
        others.update(dict.fromkeys(
            amount for amount, lead in amounts if _value(amount) not in given
            and _about(lead, asked) >= most and {_last_word(lead), *went} != {"from", "to"}))
    return list(others)


def _last_word(text: str) -> str:
    return text.split()[-1].lower() if text.split() else ""


def _amounts_by_sentence(text: str, asked: Counted) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """The sentences of `text` that give amounts of what `asked` counts, each with those
    amounts as written and the words since the amount before each (which name whose amount it
    is: "and BERTLARGE (L=24, H=1024, A=16"): amounts with one of its words among the next
    NEAR words and no other amount in between ("6 layers with 8 heads" gives 8 heads, not 6),
    and the values a sentence gives to a symbol the text defines as their number ("A=12")."""
    for sentence in _sentences(_TOKEN.findall(text)):
        at = [i for i, token in enumerate(sentence)
              if _is_amount(token) and _counts(sentence[i + 1:i + 2 + NEAR], asked)]
        if at:
            yield " ".join(sentence), [(sentence[i], " ".join(sentence[after + 1:i]))
                                       for after, i in zip([-1, *at], at)]
    for symbol, defining in _defined_amounts(text, asked):
        values = list(_given_to(symbol).finditer(defining))
        yield defining, [(v.group(1), defining[after:v.start()])
                         for after, v in zip([0, *(v.end() for v in values)], values)]


def _is_amount(token: str) -> bool:
    return bool(_AMOUNT.fullmatch(token)) or token.lower() in WORD_NUMBERS


def _value(token: str) -> str:
    """An amount as numbers_given's numbers are compared: "eight" -> "8", "1,000" -> "1000"."""
    if token.lower() in WORD_NUMBERS:
        return str(WORD_NUMBERS[token.lower()])
    return canonical(re.sub(r"[^\d.]", "", token))  # "110M": _AMOUNT's unit goes too


def _counts(after: list[str], asked: Counted) -> bool:
    """Whether a word of what `asked` counts comes among the NEAR words `after` an amount, before
    any other amount, and is not given an amount of its own right after: "A=12, Total
    Parameters=110M" gives 110M parameters, not 12. A compound is read whole: "two sub-layers"
    are no amount of layers."""
    for i, token in enumerate(after[:NEAR]):
        if _is_amount(token):
            return False
        if set(content_words(token.replace("-", ""))) & asked.things:
            return i + 1 == len(after) or not _is_amount(after[i + 1])
    return False


def _giving_sentences(text: str, asked: Counted) -> Iterator[tuple[str, int]]:
    """The sentences of `text` (its references left out: "Section 3.2.2.") that give an amount
    of what `asked` counts, each with 1 where the amount is given to a symbol the text defines
    as the number of those things, else 0."""
    for sentence in _sentences(_TOKEN.findall(text)):
        for i, token in enumerate(sentence):
            if not _is_amount(token):
                continue
            near = sentence[i + 1:i + 1 + NEAR] + (
                sentence[max(0, i - NEAR):i] if asked.after_too else [])
            # a compound read whole: "two sub-layers" are no amount of layers
            if any(set(content_words(t.replace("-", ""))) & asked.things for t in near):
                yield " ".join(sentence), 0
                break
    # "the number of layers ... as L", then "L=12": how many there are, where "we concatenate
    # the last 4 layers of BERT" only uses some of them (over BERT, that came first)
    for defining in dict.fromkeys(sentence for _, sentence in _defined_amounts(text, asked)):
        yield defining, 1


def _about(sentence: str, asked: Counted) -> int:
    """How many of the question's other words the sentence holds, a word also as the start of
    a longer one: "BERT" in "BERTBASE (L=12, …)"."""
    said = set(content_words(sentence))
    return sum(1 for a in asked.about
               if a in said or (len(a) >= 4 and any(w.startswith(a) for w in said)))


def _defined_amounts(text: str, asked: Counted) -> list[tuple[str, str]]:
    """The sentences of `text` that give an amount to a symbol it defines as the number of
    what `asked` counts, each with that symbol."""
    symbols = set()
    for found in _SYMBOL_NAMED.finditer(text):
        things, symbol = (found.group(1), found.group(2)) if found.group(2) else \
            (found.group(4), found.group(3))
        if set(content_words(things)) & asked.things:
            symbols.add(symbol)
    if not symbols:
        return []
    return [(symbol, s) for s in _RAW_SENTENCE.split(text) for symbol in sorted(symbols)
            if _given_to(symbol).search(s)]


def _given_to(symbol: str) -> re.Pattern[str]:
    """A value given to `symbol` ("L=12"; not "#L" nor "HL"), the value its group 1."""
    return re.compile(rf"(?<![\w#]){re.escape(symbol)}\s*=\s*(\d+(?:[.,]\d+)*)")


def _sentences(tokens: list[str]) -> list[list[str]]:
    """The tokens split where a sentence ends."""
    sentences: list[list[str]] = [[]]
    for token in tokens:
        if token in ".;:!?":
            sentences.append([])
        else:
            sentences[-1].append(token)
    return [s for s in sentences if s]

"""A question's words as keyword search reads them: stemmed, stop words dropped. BM25 indexes
with the same tokens, a hit's coverage counts them, and the Chat page highlights them."""

from __future__ import annotations

import re
from functools import lru_cache

# A word of one or two letters is one where it stands alone ("matrix B", "QA"), not where it
# is part of a hyphenated name ("STS-B", read as "stsb") or of a contraction ("BERT's",
# "don't", "we've")
_WORD = re.compile(r"[^\W_]{3,}|(?<![\w'’])[^\W_]{2}(?!\w)|(?<![\w'’-])[^\W_](?![\w-])")
# A hyphenated or underscored word is also read joined: papers write "BERTBASE", "finetuning"
# and "dmodel" where a question says "BERT-base", "fine-tuning" and "d_model" (and the other way
# round), and the stems of the parts alone never meet the joined one.
_COMPOUND = re.compile(r"\b[^\W_]+(?:[-_][^\W_]+)+\b")
_COMPOUND_OR_WORD = re.compile(r"\w+(?:-\w+)*")
# The stemmer reads "LMs" as "lms", which "LM" never meets: a search for "language models
# (LM)" covered less of the chunks that write "LMs"
_PLURAL_ABBREVIATION = re.compile(r"\b([A-Z][A-Z0-9]*[A-Z])s\b")
# Keyword indexes saved by another version are rebuilt. 2: hyphenated words also joined;
# 3: underscored ones too; 4: a letter alone ("matrix B"), short numbers, and an
# abbreviation's plural read as the abbreviation.
TOKENS_VERSION = 4
_CLOSING = re.compile(r"(?:['’]s)?[.,;:!?)\]}”’'\"]*(?!\w)")  # "BERT's", not "don't"
_OPENING = "([{“‘'\""


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def as_read(text: str) -> str:
    """`text` as its words are read: an abbreviation's plural as the abbreviation ("LMs" ->
    "LM"), and followed by its hyphenated words joined ("fine-tuning" -> "finetuning")."""
    text = _PLURAL_ABBREVIATION.sub(r"\1", text)
    joined = [m.replace("-", "").replace("_", "") for m in _COMPOUND.findall(text)]
    return " ".join([text, *joined]) if joined else text


def _words(text: str) -> list[str]:
    return _WORD.findall(as_read(text))


def tokenize(texts: list[str]):
    """bm25s tokens of `texts`, stemmed as `question_terms` stems."""
    import bm25s

    return bm25s.tokenize([as_read(t) for t in texts], token_pattern=_WORD.pattern,
                          stopwords=_bm25_stop_words(), stemmer=_stemmer().stemWords,
                          show_progress=False)


@lru_cache(maxsize=1)
def _bm25_stop_words() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return [*STOPWORDS_EN, *_FRAGMENTS]


def question_terms(question: str) -> set[str]:
    """The question's words that are not stop words, as stems (as BM25 matches them)."""
    return set(content_words(question))


# Forms of auxiliary verbs that scikit-learn's list lacks: weighed by how rare they are in a
# collection, "Does" of "Does the paper report macro F1?" counted as much as "report" (papers
# seldom write "does"), and the question was refused.
_MORE_STOP_WORDS = frozenset({"does", "did", "doing", "having", "shall"})


# Short words count too ("matrix B", "rank r", "QA"), but not these pieces of "e.g.", "i.e."
# and "et al.", nor (in a question) short ones with digits: the "2" and "0" of "SQuAD 2.0",
# and the "v1" of "SQuAD v1.1" that its table's caption ("SQuAD 1.1") lacks
_FRAGMENTS = frozenset({"e", "g", "i", "al", "et"})


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS | _MORE_STOP_WORDS


def content_words(text: str) -> dict[str, str]:
    """The text's words that are not stop words, by stem: stem -> the word as written (lower
    case; the last one written of those with that stem)."""
    stem, stop = _stemmer().stemWord, stop_words() | _FRAGMENTS
    return {stem(w.lower()): w.lower() for w in _words(text)
            if (len(w) >= 3 or w.isalpha()) and w.lower() not in stop}


def coverage(text: str, terms: set[str], weights: dict[str, float] | None = None) -> float:
    """The share of `terms` that `text` contains, each term counted by its weight in `weights`
    (core.rag.bm25.Bm25Index.idf: a rare word weighs more than a common one), else 1."""
    if not terms:
        return 0.0
    stem = _stemmer().stemWord
    found = terms & {stem(w.lower()) for w in _words(text)}
    return weighed(found, weights) / weighed(terms, weights)


def weighed(terms: set[str], weights: dict[str, float] | None) -> float:
    """The summed weight of `terms` (their number without `weights`)."""
    return float(len(terms)) if weights is None else sum(weights.get(t, 1.0) for t in terms)


def highlight_spans(text: str, question: str) -> list[tuple[str, bool]]:
    """The text cut into (segment, matches-a-question-term) pieces. Each mark is drawn padded,
    so the punctuation that touches a word goes inside its mark ("(BERT)", "tasks,",
    "BERT's"): outside it would read "( BERT )" and "tasks ,"; and neighbouring terms make one
    mark, as "pre-training" or "generative models" would otherwise read "pre - training"."""
    stem = _stemmer().stemWord
    terms = question_terms(question)
    spans: list[tuple[str, bool]] = []
    last = 0
    for match in _COMPOUND_OR_WORD.finditer(text):
        word = _PLURAL_ABBREVIATION.sub(r"\1", match.group(0)).lower()
        # A compound is marked whole: marked in part it read "Feature- based", drawn padded;
        # but not for a letter of it, as search does not read one ("STS-B" for "matrix B")
        parts = re.split("[-_]", word)
        parts = [p for p in parts if len(p) > 1] if len(parts) > 1 else parts
        if not any(stem(w) in terms
                   for w in [*parts, word.replace("-", "").replace("_", "")]):
            continue
        gap = text[last:match.start()]
        closing = _CLOSING.match(text, match.end())
        end = closing.end() if closing else match.end()
        if spans and spans[-1][1] and spans[-1][0][-1].isalnum() and gap in ("-", " "):
            spans[-1] = (spans[-1][0] + gap + text[match.start():end], True)
        else:
            opening = len(gap) - len(gap.rstrip(_OPENING))
            if gap[:len(gap) - opening]:
                spans.append((gap[:len(gap) - opening], False))
            spans.append((text[match.start() - opening:end], True))
        last = end
    if last < len(text):
        spans.append((text[last:], False))
    return spans

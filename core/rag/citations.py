"""Citations [n] in an answer: the marks the model wrote, refusals recognised, marks the model
chooses itself after each sentence (stream_marked), and, for engines that cannot be steered,
citations inferred sentence by sentence from similarity."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing

import numpy as np

from core.rag.embeddings import query_embedder
from core.rag.hits import Hit
from core.rag.terms import content_words, question_terms
from core.settings import Settings

REFUSAL = "The documents do not say."
INFER_MIN_SIMILARITY = 0.35
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_REFUSALS = ("the documents do not say", "the documents don't say", "i don't know",
             "i do not know", "the context does not", "the context doesn't")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A sentence ends at . ! or ? after a word (not "1." of a list), before a space; not after
# the abbreviations papers use.
_ENDS_SENTENCE = re.compile(r"[^\s\d][.!?][\"')\]]?$")
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "etc.", "Fig.", "Eq.", "vs.", "cf.", "No.")
_INITIAL = re.compile(r"(?:^|[\s(])[A-Z]\.$")  # "Ian J." of "Ian J. Goodfellow"
# What the model wrote since its last sentence when it is nothing but marks (or the start of
# one): held back until a word follows.
_MARKS_ONLY = re.compile(r"(?:\s*\[\d*(?:\s*,\s*\d*)*\]?)*\s*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A list's item numbers ("1. Masked LM 2. Next Sentence Prediction", "(1) sentence pairs") are
# not the sentence's facts: read as numbers, they sent that answer's mark to a passage that
# lists "(1) … (2) …", not to the one it came from.
_ENUMERATOR = re.compile(r"(?:^|(?<=\s))\(?\d{1,2}[.)](?=\s+[^\W\d_])")


def without_marks(text: str) -> str:
    """The text without its [n] marks, the spaces they leave as one."""
    return " ".join(_CITATION.sub(" ", text).split())


def citation_marks(answer: str) -> list[int]:
    """Every number the answer cites, in [1], [2][3] or [1, 2] form."""
    return sorted({int(n) for group in _CITATION.findall(answer) for n in group.split(",")})


def cited_ranks(answer: str, used: list[Hit]) -> list[int]:
    """The marks that point at a passage the model was given; others are not citations."""
    valid = {h.rank for h in used}
    return [n for n in citation_marks(answer) if n in valid]


def is_refusal(answer: str) -> bool:
    """Also when the model put a mark before it ("[1] The documents do not say."), as the
    reminder's example leads it to."""
    return _CITATION.sub("", answer).strip().lower().replace("’", "'").startswith(_REFUSALS)


def with_marks(pieces: Iterator[str], marks: list[int]) -> Iterator[str]:
    """`pieces`, then `marks` after them unless the text already carries one of them."""
    text = ""
    for piece in pieces:
        text += piece
        yield piece
    if marks and not set(citation_marks(text)) & set(marks) and not is_refusal(text):
        yield " " + "".join(f"[{n}]" for n in marks)


def infer_citations(settings: Settings, answer: str, used: list[Hit],
                    embedding_model: str | None = None, question: str = "") -> list[dict]:
    """Each answer sentence attributed to the chunk it is most similar to (when similar enough)
    among those it may be marked with (`candidates`), as the model's own marks are."""
    sentences = [s for s in _SENTENCE_END.split(answer.strip()) if len(s.split()) >= 3]
    if not sentences or not used:
        return []
    embedder = query_embedder(settings, embedding_model)
    s_vec = np.asarray(embedder.embed(sentences))
    c_vec = np.asarray(embedder.embed([h.text for h in used]))
    sims = s_vec @ c_vec.T
    links = []
    for sentence, row in zip(sentences, sims):
        holding = candidates(sentence, {i: h.text for i, h in enumerate(used)}, question)
        best = max(holding, key=lambda i: row[i])
        if row[best] >= INFER_MIN_SIMILARITY:
            links.append({"sentence": sentence, "rank": used[best].rank,
                          "similarity": round(float(row[best]), 3)})
    return links



def written_numbers(text: str) -> list[str]:
    """The numbers in `text` as it writes them ("123,456"), but for a list's item numbers."""
    return _NUMBER.findall(_ENUMERATOR.sub(" ", text))


def numbers(text: str) -> set[str]:
    """The numbers written in `text`, thousands separators dropped ("$123,456" -> "123456"),
    but for a list's item numbers."""
    return {n.replace(",", "") for n in written_numbers(text)}


def holding_numbers(sentence: str, passages: dict[int, str], question: str = "") -> list[int]:
    """The passages that hold every number of the sentence, where the sentence has numbers
    and some passage holds them all; else every passage. A number can be checked where a
    paraphrase cannot: asked "How many layers does BERT-large have?", the 0.5B wrote "BERTLARGE
    has 24 layers." and marked it [2], a table caption without a 24, though passage 1 reads
    "BERTLARGE (L=24, …)". Of several that hold them, those where a sentence gives the number
    with the most of the question's words: asked how many layers the Transformer's encoder
    has, "6 layers" was marked with the decoder's "N = 6 identical layers", not the encoder's."""
    wanted = numbers(without_marks(sentence))
    holding = [rank for rank, text in passages.items() if wanted <= numbers(text)]
    if not (wanted and holding):
        return list(passages)
    asked = question_terms(question)
    said_with = {rank: max((len(asked & set(content_words(s))) for s in _SENTENCE_END.split(
        passages[rank].replace("\n", " ")) if wanted & numbers(s)), default=0) for rank in holding}
    return [rank for rank in holding if said_with[rank] == max(said_with.values())]


# A passage that holds this many more of a sentence's new words (those the question did not
# ask with) than any other is the one it came from: the 0.5B marked "1. Masked LM … 2. Next
# Sentence Prediction" [2], BERT's "two steps in our framework: pre-training and fine-tuning",
# though only passage 1 names the two tasks. A passage that holds every new word of a short
# sentence, where no other holds any, is as clear: asked which optimizer trained the
# Transformer, the 0.5B wrote "Adam [2]", and only passage 1 says "Adam". A short one whose
# new words several passages hold is marked with the best of them: in a conversation about
# the Transformer, "Adam [2]" pointed at its references ("Adam: A method for stochastic
# optimization"), below "5.3 Optimizer" ("We used the Adam optimizer").
CLEAR_MARGIN = 2
SHORT_ANSWER_WORDS = 3


def holding_words(sentence: str, passages: dict[int, str], among: list[int],
                  question: str = "") -> list[int]:
    """Of the passages `among` (best first), the one(s) holding the most of the sentence's words
    that are not the question's (stems, stop words left out), where they hold CLEAR_MARGIN more
    than any other, or all of them where no other holds any; of a short sentence's, the best
    passage that holds them all; else all of `among`."""
    said = question_terms(without_marks(sentence)) - question_terms(question)
    held = {rank: len(said & set(content_words(passages[rank]))) for rank in among}
    if 0 < len(said) <= SHORT_ANSWER_WORDS:
        whole = [rank for rank in among if held[rank] == len(said)]
        if whole:
            return whole[:1]
    most, *others = sorted(held.values(), reverse=True) or [0]
    alone = bool(said) and most == len(said) and bool(others) and max(others) == 0
    if others and (most - max(others) >= CLEAR_MARGIN or alone):
        return [rank for rank in among if held[rank] == most]
    return among


def candidates(sentence: str, passages: dict[int, str], question: str = "") -> list[int]:
    """The passages a sentence may be marked with: those that hold its numbers, and of them
    the one that clearly holds most of its new words."""
    return holding_words(sentence, passages, holding_numbers(sentence, passages, question),
                         question)


# A mark the model writes itself within a sentence (" [2]", not "x[0]" of code), held back from
# its "[" until its number is checked: the 1.5B listed "1. SuperCo, Inc. [1] - Employer 2. Jane
# Smith [2] - Employee" where passage 2, the form's signature block, holds no "Jane Smith".
_BEGUN_MARK = re.compile(r"(?<=\s)\[\d{0,2}$")
_WRITTEN_MARK = re.compile(r"(?<=\s)\[(\d{1,2})\](?P<after>[.,;:!?)]*)$")  # "]." is one token


def _since_last_mark(text: str) -> str:
    return text[max((m.end() for m in _CITATION.finditer(text)), default=0):]


def checked_mark(rank: int, text: str, passages: dict[int, str], question: str = "") -> str:
    """The model's own mark [rank] after `text` where it may be marked so (`candidates`); else
    the one passage it may be marked with, else nothing (the sentence's end is then marked as
    any other's)."""
    allowed = candidates(text, passages, question)
    if rank in allowed:
        return f"[{rank}]"
    return f"[{allowed[0]}]" if len(allowed) == 1 else ""


def _ends_sentence(text: str) -> bool:
    return (bool(_ENDS_SENTENCE.search(text)) and not text.endswith(_ABBREVIATIONS)
            and not _INITIAL.search(text))


def stream_marked(engine, messages: list[dict], passages: dict[int, str], max_new_tokens: int,
                  stop: threading.Event, stop_at: Sequence[str] = (), question: str = ""
                  ) -> Iterator[str]:
    """The model's answer with a passage mark after each sentence that lacks one, the number
    chosen by the model itself: at each sentence end the reply so far is followed by " [" and
    the model may write only the number of a passage (rank -> the text it read) that holds
    the sentence's numbers and, where one clearly does, most of its words (`candidates`). The
    answer stops there and carries on from the marked text (llama.cpp reads only the new
    tokens), so the marks stream with the answer and the model reads them as its own. It ends
    before any of `stop_at`. `question`: what was asked, whose words say nothing of where a
    sentence came from."""
    reply, budget = "", max_new_tokens
    sentence_start = 0  # where the sentence being written begins: after the last mark
    ranks = list(passages)
    while budget > 0:
        space = ""  # what the model wrote after its sentence, put back after the mark
        shown = len(reply)  # what is held back is reply[shown:]
        with closing(engine.continue_reply(messages, reply, budget, stop, stop_at)) as pieces:
            for piece in pieces:
                budget -= 1
                if reply[-1:].isspace() and len(reply) == sentence_start:
                    piece = piece.lstrip(" ")  # the space after a mark is already written
                # A token may carry a sentence's end and the space after it (".\n\n"):
                # the space is kept for after the mark (the model took a reply that ends in
                # its mark for a finished one); what follows it is written again.
                cut = next((i for i, ch in enumerate(piece) if ch.isspace()), None)
                if cut is not None and _ends_sentence(reply + piece[:cut]):
                    rest = piece[cut:]
                    space = rest[:len(rest) - len(rest.lstrip())]
                    piece = piece[:cut]
                reply += piece
                if _MARKS_ONLY.fullmatch(reply[sentence_start:]):
                    # A small model may go on writing "[1]" line after line once its
                    # sentence is marked (the 135M did, 50 times): a second mark with no word
                    # between is the end of the answer, and the held marks are not shown.
                    if len(_CITATION.findall(reply[sentence_start:])) > 1:
                        return
                    continue
                if _BEGUN_MARK.search(reply):  # shown once its number is checked
                    continue
                if written := _WRITTEN_MARK.search(reply):
                    before = reply[:written.start()]
                    mark = checked_mark(int(written.group(1)),
                                        _since_last_mark(before[sentence_start:]), passages, question)
                    # a mark taken out takes the space before it, where that is not shown yet
                    reply = (before + mark if mark else before[:max(shown, len(before.rstrip(" ")))]
                             ) + written.group("after")
                yield reply[shown:]
                shown = len(reply)
                if space:
                    break
        if len(reply) > shown:  # one mark, and then the model ended: the model's own citation
            yield reply[shown:]
        sentence = reply[sentence_start:]
        if (sentence.strip() and not stop.is_set() and not is_refusal(reply)
                and not set(citation_marks(sentence)) & set(ranks)):
            choices = [f"{r}]" for r in candidates(sentence, passages, question)]
            mark = " [" + engine.choose(messages, reply + " [", choices)
            reply += mark
            yield mark
        if not space or stop.is_set():
            return
        reply += space
        yield space
        sentence_start = len(reply)

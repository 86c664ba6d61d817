"""Acronyms that a collection's document titles spell: papers are asked about by the name
people know them by ("the RAG paper", "What is a GAN?"), which their own text may never use.
The GAN paper never writes "GAN", so no chunk covered the question's one topical word: every
passage rated a weak match, and "What is a GAN?" over that very paper was refused."""

from __future__ import annotations

import re

_ACRONYM = re.compile(r"\b[A-Z]{3,}s?\b")  # "GAN", "GANs"; "BERT" too, but no title spells it
_WORD = re.compile(r"[^\W_]+")
# what `expand` and core.rag.definitions.with_definitions add to a question
_INSERTED = re.compile(r" \(([^()]+)\)")
_ABBREVIATION = re.compile(r"[A-Z][A-Za-z]*[A-Z][A-Za-z0-9]*")  # "NQ", "MTurk", "NF4"


def acronyms(text: str) -> set[str]:
    """The all-capital words of three letters or more, a plural's "s" left off."""
    return {word.rstrip("s") for word in _ACRONYM.findall(text)}


def spelled_by(acronym: str, title: str) -> str | None:
    """The run of `title`'s words whose initials spell `acronym` ("GAN": "Generative
    Adversarial Nets"), None when none does; the hyphen's parts count as words
    ("Retrieval-Augmented Generation" spells "RAG")."""
    words = [m for m in _WORD.finditer(title)]
    initials = "".join(m[0][0] for m in words).upper()
    at = initials.find(acronym.upper())
    if at < 0:
        return None
    return title[words[at].start():words[at + len(acronym) - 1].end()]


def expand(question: str, titles: list[str]) -> str:
    """The question with each acronym that one title spells followed by the words it stands
    for ("What is a GAN (Generative Adversarial Nets)?"), so that search also finds the text
    that only ever writes them out. An acronym that several titles spell, or that a title
    itself contains, stays as it is."""
    in_titles = {a for title in titles for a in acronyms(title)}
    for acronym in sorted(acronyms(question) - in_titles):
        found = {spelled.lower(): spelled for title in titles
                 if (spelled := spelled_by(acronym, title))}
        if len(found) == 1:
            at = re.search(rf"\b{acronym}s?\b", question)
            if at:
                question = f"{question[:at.end()]} ({found.popitem()[1]}){question[at.end():]}"
    return question


def spelled_out(question: str, query: str) -> list[tuple[str, str]]:
    """What `expand` and definitions.with_definitions added to `question` to make `query`, as
    (the acronym the question says, the words it was read as), or ("", the abbreviation a
    phrase of the question was also searched for as): ("RAG", "Retrieval-Augmented
    Generation"), ("", "NQ"); none where `query` differs from `question` in more than that (a
    follow-up's rewrite)."""
    if not _INSERTED.search(query) or _INSERTED.sub("", query) != question:
        return []
    pairs = []
    for m in _INSERTED.finditer(query):
        if _ABBREVIATION.fullmatch(m[1]):
            pairs.append(("", m[1]))
        else:  # a plural's "s" left off
            said = query[:m.start()].split()[-1]
            pairs.append((said[:-1] if said.endswith("s") and said[:-1].isupper() else said, m[1]))
    return pairs

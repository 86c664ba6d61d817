"""Acronyms that a collection's document titles spell: papers are asked about by the name
people know them by ("the RAG paper", "What is a GAN?"), which their own text may never use.
The GAN paper never writes "GAN", so no chunk covered the question's one topical word: every
passage rated a weak match, and "What is a GAN?" over that very paper was refused."""

from __future__ import annotations

import re

_ACRONYM = re.compile(r"\b[A-Z]{3,}s?\b")  # "GAN", "GANs"; "BERT" too, but no title spells it
_WORD = re.compile(r"[^\W_]+")


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
    """The acronyms `expand` spelled out to turn `question` into `query`, as (acronym,
    words); none where `query` differs from `question` in more than that (a follow-up's
    rewrite)."""
    pairs = re.findall(r"\b([A-Z]{3,})s? \(([^()]+)\)", query)
    bare = re.sub(r"(\b[A-Z]{3,}s?) \([^()]+\)", r"\1", query)
    return pairs if pairs and bare == question else []

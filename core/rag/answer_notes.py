"""What a reader is told beside an answer: the caveats on its text (restated question, weak
matches, figures the passages do not hold as asked) and what was searched where, worded once for
the Chat page, the CLI, the API and the Markdown export alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.rag import acronyms
from core.rag.hits import Hit
from core.rag.quantities import counted
from core.rag.retrieval import WITHIN_REASONS
from core.text import listed

if TYPE_CHECKING:
    from core.rag.answers import Answer

RESTATED_NOTE = ("This answer only repeats the question's words: the passages may not hold "
                 "the answer.")
UNCHANGED_NOTE = "The model gave the previous answer back unchanged."
REWORDING_NOTE = "not searched: the previous answer worded anew, from its passages"
# Between the refusal line (relevance.ANSWERABLE_MIN) and "partial": "What is the capital of
# Peru?" over the seven shared papers was answered "The capital of Peru is Lusaka. [1]" from
# QLoRA's "Guanaco: The capital of Zambia is Lusaka", every passage beside it marked weak.
WEAK_NOTE = ("Every passage is only a weak match for the question: the documents may not hold "
             "the answer.")


def caveats(answer: Answer) -> list[str]:
    """What a reader should know before trusting the answer's text, one sentence each."""
    notes = [RESTATED_NOTE] if answer.restates_question else []
    if answer.only_weak_matches:
        notes.append(WEAK_NOTE)
    if answer.rewording == "unchanged":
        notes.append(UNCHANGED_NOTE)
    if answer.unread_numbers:
        notes.append(numbers_note(answer.unread_numbers, "none of the passages the model read "
                                  "holds"))
    if answer.reference_numbers:
        notes.append(numbers_note(answer.reference_numbers, "the passages the model read hold "
                                  "only as a section, table or citation number"))
    if answer.other_counts:
        notes.append(numbers_note(answer.other_counts, "the passages the model read do not give "
                                  "as a count of what the question asks about"))
    if answer.other_amounts:
        notes.append(other_amounts_note(answer.question, answer.other_amounts))
    # one note a number: a count of something else is said as such, table or not
    if in_table := [n for n in answer.table_numbers if n not in answer.other_counts]:
        notes.append(numbers_note(in_table, "the passages the model read give only in a table, "
                                  "where a row or column is easily misread"))
    return notes


def numbers_note(figures: list[str], why: str) -> str:
    """"The answer gives 7 and 8, which {why}: check them against the sources."""
    return (f"The answer gives {listed(figures)}, which {why}: check "
            f"{'them' if len(figures) > 1 else 'it'} against the sources.")


def other_amounts_note(question: str, amounts: list[str]) -> str:
    """"The passage the answer's number comes from also gives 12 attention heads: …"."""
    asked = counted(question)
    given = f"{listed(amounts)} {asked.named}" if asked else listed(amounts)
    return (f"The passage the answer's number comes from also gives {given}: check which one "
            "the question means.")


def searched_for_note(question: str, searched_for: str) -> str:
    """What was searched where it was not the question as asked: "searched for: …" (a
    follow-up's standalone query), or, for the question with its acronyms spelled out, only
    how they were read ("read RAG as Retrieval-Augmented Generation")."""
    if spelled := acronyms.spelled_out(question, searched_for):
        read = ", ".join(f"{acronym} as {words}" for acronym, words in spelled if acronym)
        also = listed([abbreviation for acronym, abbreviation in spelled if not acronym])
        return "; ".join(filter(None, (read and f"read {read}", also and f"also searched for {also}")))
    return f"searched for: {searched_for}" if searched_for and searched_for != question else ""


def search_notes(question: str, searched_for: str, searched_in: Sequence[str], because: str,
                 sources: Sequence[Hit], escape=str) -> str:
    """What was searched, where it was not simply the question over every document: the
    documents searched first named as their chunks are (by title), each note passed through
    `escape` (the Chat page escapes Markdown)."""
    titles = {hit.doc: hit.document for hit in sources}
    notes = [escape(searched_for_note(question, searched_for)),
             searched_in_note(searched_in, because, lambda doc: escape(titles.get(doc, doc)))]
    return " · ".join(note for note in notes if note)


def searched_in_note(searched_in: Sequence[str], because: str, name=str) -> str:
    """"searched in X first, which the question names", or "" where every document was
    searched alike; `name` formats each file name (the Chat page escapes Markdown)."""
    if not searched_in:
        return ""
    return f"searched in {', '.join(map(name, searched_in))} first, {WITHIN_REASONS[because]}"

"""The Chat page's answers: each question with what was searched for it, and each answer with
its caveats, citations and timing."""

import streamlit as st

from app_pages.chat_sources import PageSource, citation_buttons
from core.formats import rate
from core.rag.answer_notes import REWORDING_NOTE, caveats, search_notes
from core.rag.answers import Answer
from core.rag.hits import Hit
from core.text import escape_markdown, safe_markdown


def citation_note(answer: Answer) -> str:
    if not answer.answerable:
        return ("No retrieved passage bears on this question, so the model was not asked. The "
                "closest passages are on the right.")
    marks = ", ".join(f"[{n}]" for n in answer.cited)
    if answer.citations_inferred:
        return f"The model gave no citation marks; matched by similarity to {marks}."
    return f"Cites {marks}." if marks else "No source cited."


def timing_note(answer: Answer, model: bool = True) -> str:
    """Retrieval's time, the model's (unless `model` is False: shown under its own column) and
    which model answered."""
    t = answer.timings
    parts = [f"retrieval {t['retrieval_ms']:.0f} ms", *(model_timings(t) if model else [])]
    # a refusal, or nothing found, is written without the model
    parts.append(answer.engine if answer.answerable and answer.used else "model not asked")
    return " · ".join(parts)


def model_timings(timings: dict) -> list[str]:
    """How fast the model answered: its first token, then its decoding."""
    parts = []
    if timings.get("ttft_ms") is not None:
        parts.append(f"first token {timings['ttft_ms'] / 1000:.1f} s")
    if timings.get("tokens_per_s"):
        parts.append(rate(timings["tokens_per_s"], "tokens"))
    return parts


def search_caption(question: str, searched_for: str, searched_in: list[str],
                   because: str, sources: list[Hit], rewording: bool = False) -> None:
    """What was searched, where it is not simply the question over every document; for a
    request to word the previous answer another way, that nothing was."""
    if rewording:
        st.caption(REWORDING_NOTE)
        return
    if notes := search_notes(question, searched_for, searched_in, because, sources,
                             escape_markdown):
        st.caption(notes)


COMPARED = ("With your documents", "Same model, no retrieval")
# Side by side where there is room for both, else one above the other: at 1024 pixels with the
# sidebar open, each column was 130 pixels wide, three words a line.
COMPARED_CSS = """[class*=st-key-compared-] [data-testid=stHorizontalBlock] {flex-wrap: wrap;}
[class*=st-key-compared-] [data-testid=stColumn] {min-width: 14rem;}"""


def compared(number: int) -> list:
    """The two columns of the `number`-th answer in compare mode (COMPARED_CSS)."""
    return st.container(key=f"compared-{number}").columns(2)


def show_answer(answer: Answer, number: int, page_source: PageSource) -> None:
    with st.chat_message("user"):
        st.text(answer.question)
        search_caption(answer.question, answer.searched_for, answer.searched_in,
                       answer.searched_in_because, answer.sources, answer.rewording is not None)
    with st.chat_message("assistant"):
        if answer.no_context is None:
            grounded = st.container()
            grounded.markdown(safe_markdown(answer.text))
        else:
            # an answer saved before compare answers were timed has no timing to show
            columns = compared(number)
            for column, label, text, timings in zip(
                    columns, COMPARED, (answer.text, answer.no_context),
                    (answer.timings, answer.timings.get("no_context", {}))):
                column.caption(label)
                column.markdown(safe_markdown(text))
                if timing := model_timings(timings):
                    column.caption(" · ".join(timing))
            grounded = columns[0]
        # what is said of the answer from the documents, under it and not the other one
        with grounded:
            if answer.stopped:
                st.caption(":orange[Stopped before the end.]")
            for note in caveats(answer):
                st.caption(f":orange[{escape_markdown(note)}]")
            st.caption(citation_note(answer))
            citation_buttons(answer, number, page_source)
            if answer.dropped:
                st.caption(f"Chunks {', '.join(f'[{n}]' for n in answer.dropped)} did not fit "
                           "the model's context window and were left out.")
        st.caption(timing_note(answer, model=answer.no_context is None))

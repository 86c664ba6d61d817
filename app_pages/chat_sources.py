"""The Chat page's sources: the retrieved chunks beside an answer, with their match and the
text the model read around them, and each passage shown highlighted in its page."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.rag import definitions, front_matter, naming, overview, parts
from core.rag.answers import Answer
from core.rag.hits import Hit
from core.rag.page_view import show_page
from core.rag.relevance import Label
from core.rag.retrieval import SCORE_MEANING
from core.rag.terms import highlight_spans
from core.text import clip, escape_markdown, heading

QUESTION_CHARS = 120  # of the question the panel's chunks were found for
TITLE_CHARS = 80  # of a document's title above its chunk


@dataclass(frozen=True)
class PageSource:
    """Where a passage's page is read from: the kept originals and the collection's chunks."""

    data_dir: Path
    chunks: object  # the Chroma collection


def citation_buttons(answer: Answer, number: int, source: PageSource) -> None:
    """One button per cited passage, opening it in its page; `number`: the answer's place in
    the conversation, which keeps its buttons apart from other answers'."""
    by_rank = {hit.rank: hit for hit in answer.sources}
    cited = [by_rank[n] for n in answer.cited if n in by_rank]
    if not cited:
        return
    with st.container(horizontal=True, vertical_alignment="center", key=f"cites-{number}"):
        st.caption("Open in its page:", width="content")
        for hit in cited:
            where = f" page {hit.page}" if hit.paged else ""
            if st.button(f"\\[{hit.rank}\\]{where}", key=f"cite-{number}-{hit.rank}",
                         type="tertiary", icon=":material/find_in_page:",
                         help=f"Passage [{hit.rank}] highlighted in its page"):
                open_page(hit, source)


def open_page(hit: Hit, source: PageSource) -> None:
    st.session_state["page-shown"] = hit.page  # each opening starts at the passage's page
    # and at the passage: opened again after "Whole page", it showed a web page from its top
    st.session_state["page-whole"] = False
    page_dialog(hit, source)


def turn_page(page: int) -> None:
    st.session_state["page-shown"] = page


@st.dialog("The passage in its page", width="large")
def page_dialog(hit: Hit, source: PageSource) -> None:
    """The page buttons rerun only this dialog, which stays open."""
    view = show_page(source.data_dir, source.chunks, hit, st.session_state.get("page-shown"))
    nav = st.columns([2, 5, 2], vertical_alignment="center")
    nav[0].button("Previous", icon=":material/chevron_left:", key="page-previous",
                  disabled=view.page <= 1, on_click=turn_page, args=(view.page - 1,))
    nav[1].markdown(f"**{escape_markdown(clip(hit.document, TITLE_CHARS))}** · page {view.page} "
                    f"of {view.pages}", help=hit.doc)
    nav[2].button("Next", icon=":material/chevron_right:", key="page-next",
                  disabled=view.page >= view.pages, on_click=turn_page, args=(view.page + 1,))
    if view.page != hit.page:
        st.caption(f"Passage [{hit.rank}] is on page {hit.page}.")
    if view.note:
        st.caption(view.note)
    if view.image is not None:
        around = view.around_passage()
        whole = around is None or st.toggle("Whole page", key="page-whole",
                                            help="The page from top to bottom; off, the "
                                                 "passage and the lines around it")
        st.image(view.image if whole else around, width="stretch",
                 alt=f"Page {view.page} of {hit.doc}, passage [{hit.rank}] highlighted"
                 if view.highlighted else f"Page {view.page} of {hit.doc}")
    else:
        around = view.text_around()
        whole = around is None or st.toggle("Whole page", key="page-whole",
                                            help="The page from top to bottom; off, the "
                                                 "passage and the paragraphs around it")
        text, span = (view.text, view.span) if whole or around is None else around
        with st.container(height=600, key="page-text"):
            st.markdown(marked_span(text, span))


def marked_span(text: str, span: tuple[int, int] | None) -> str:
    """Page text as literal characters, the span on a coloured background line by line (a
    directive cannot hold a line break)."""
    if span is None:
        return escape_markdown(text)
    start, end = span
    return (escape_markdown(text[:start])
            + by_line(text[start:end], lambda line: f":orange-background[{escape_markdown(line)}]")
            + escape_markdown(text[end:]))


def by_line(text: str, mark: Callable[[str], str]) -> str:
    """Each non-blank line of `text` marked on its own (neither a directive nor bold can hold a
    line break), the lines kept apart as escape_markdown keeps them."""
    return "  \n".join(mark(line) if line.strip() else "" for line in text.split("\n"))


def chunk_markdown(hit: Hit, question: str) -> str:
    """The chunk as literal characters, the question's words on a coloured background and the
    sentence that matched the question best in bold."""

    def words(text: str) -> str:
        return "".join(f":orange-background[{escape_markdown(seg)}]" if match
                       else escape_markdown(seg) for seg, match in highlight_spans(text, question))

    if hit.best_sentence is None:
        return words(hit.text)
    start, end = hit.best_sentence
    if end - start > WHOLE_CHUNK * len(hit.text):  # a form's fields: no sentence stands out
        return words(hit.text)
    return (words(hit.text[:start])
            + by_line(hit.text[start:end], lambda line: f"**{words(line.strip())}**")
            + words(hit.text[end:]))


MATCH_COLOUR: dict[Label, str] = {"strong": "green", "partial": "orange", "weak": "gray"}
# What each mark means, as measured where the relevance was fitted (core.rag.relevance): its
# probability alone ("31%" beside "strong match") read as a contradiction.
MATCH_MEANING: dict[Label, str] = {
    "strong": "chunks rated this high held the answer one time in three or more",
    "partial": "chunks rated this high held the answer between one time in ten and one in three",
    "weak": "chunks rated this low held the answer less than one time in ten",
}
# Which search found the chunk, in words: the retrievers' names ("dense", "bm25", "both") meant
# nothing to a reviewer who had not read about retrieval
FOUND_BY = {"dense": "found by meaning", "bm25": "found by keywords",
            "both": "found by meaning and keywords"}
# A best sentence longer than this share of its chunk is not bolded: in a form's fields with
# no sentence breaks, it was most of the chunk.
WHOLE_CHUNK = 0.6


# Passages placed for what they are, not found by their words (Hit.retriever): their badge and
# why they are shown
PLACED_BADGES = {
    overview.RETRIEVER: (
        "what the document is about", "Shown because the question asks what the document is "
        "about: its abstract (or, without one, the opening of its first section) says that, "
        "however little its words resemble the question's"),
    naming.RETRIEVER: (
        "where the document introduces it", "Shown beside the document's opening because the "
        "question names something that this sentence introduces: it says which document the "
        "question is about"),
    parts.RETRIEVER: (
        "the part asked for", "Shown first because the question names a numbered part of the "
        "document (\"the first tip\", \"step 3\"), and this passage falls under its heading"),
    definitions.RETRIEVER: (
        "where it is spelled out", "Shown first because the question asks what an abbreviation "
        "stands for, and this passage spells it out beside it in brackets"),
}


def match_badge(hit: Hit, method: str) -> None:
    rated = f"rated {hit.relevance:.0%} likely to hold the answer from its words"
    if hit.retriever == front_matter.RETRIEVER:  # chosen for what it is, not for its words
        end = "opening" if hit.chunk == 0 else "end"  # its end: where an agreement is signed
        placed: tuple[str, str] | None = (
            f"the document's {end}", "Shown because the question asks about the document itself "
            f"(who wrote it, its title, its parties): its {end} says that, however little its "
            "words resemble the question's")
    else:
        placed = PLACED_BADGES.get(hit.retriever)
    if placed is not None:
        st.badge(placed[0], color="violet", help=f"{placed[1]} ({rated}).")
        return
    found_by = "" if method != "hybrid" else f", {FOUND_BY.get(hit.retriever, '')}"
    st.badge(f"{hit.match} match", color=MATCH_COLOUR[hit.match],
             help=f"About {hit.relevance:.0%} likely to hold the answer. On question-answering "
                  f"test data, {MATCH_MEANING[hit.match]}, against about one in seventeen for a "
                  f"typical candidate. Rated from how close the chunk"
                  f"{' (its best sentence)' if hit.sentence_cosine is not None else ''} is in "
                  f"meaning to the question and how many of the question's words it holds"
                  f"{similar_words_note(hit)}. {method.capitalize()} score {hit.score:.2f}"
                  f"{found_by}: {SCORE_MEANING[method]}.")


def similar_words_note(hit: Hit) -> str:
    """The question words that the chunk has only in other words, as the tooltip names them."""
    if not hit.similar_words:
        return ""
    pairs = ", ".join(f"“{theirs}” counted for “{asked}”"
                      for asked, theirs in hit.similar_words.items())
    return f" ({pairs})"


def show_sources(hits, question: str, cited: list[int], inferred: bool,
                 windows: dict[int, dict], method: str, source: PageSource, asked: str,
                 turn: int, viewable: bool = True) -> None:
    """The chunks found for the conversation's `turn`-th question, `asked` (`question`: what
    was searched for, whose words are marked). `viewable` False while the answer streams: any
    click then would stop it."""
    st.subheader("Retrieved chunks")
    # Which question they are for: a conversation opened from the picker shows its first
    # question at the top and these, its last one's, beside it.
    st.caption(f"For the latest question: {escape_markdown(clip(asked, QUESTION_CHARS))}")
    if not hits:
        st.info("Nothing matched. Lower the minimum score or widen the document filter.")
        return
    # The chunks scroll beside the chat, each question's from their top: one scroller kept
    # its place, and a later answer's panel opened at its third chunk.
    scroller = st.container(height=900, border=False, key=f"sources-scroller-{turn}")
    for hit in hits:
        with scroller.container(border=True, key=f"hit-{hit.rank}"):
            badge = ""
            if hit.rank in cited:
                badge = " :green-badge[inferred]" if inferred else " :green-badge[cited]"
            found_by = (f" :blue-badge[{FOUND_BY[hit.retriever]}]"
                        if hit.retriever in FOUND_BY else "")  # else the match mark says why
            # The title, which people know a paper by ("2106.09685v2.pdf" told a viewer
            # nothing); the file name below it
            where = f" · page {hit.page}" if hit.paged else ""
            st.markdown(f"**[{hit.rank}]** {escape_markdown(clip(hit.document, TITLE_CHARS))}"
                        f"{where}{found_by}{badge}")
            match_badge(hit, method)
            # the file (where the title heads the card) and the section, unless it is the title
            if above := heading("", hit.doc if hit.title else "",
                                "" if hit.section == hit.title else hit.section):
                st.caption(escape_markdown(above))
            around = windows.get(hit.rank, {})
            if around.get("before"):  # what the model read around the hit, faded
                st.caption(escape_markdown("… " + around["before"]))
            st.markdown(chunk_markdown(hit, question))
            if around.get("after"):
                st.caption(escape_markdown(around["after"] + " …"))
            if st.button("View in page", icon=":material/find_in_page:", type="tertiary",
                         key=f"view-{hit.rank}", disabled=not viewable,
                         help="The passage highlighted in its page" if viewable else
                              "Opens once the answer is written"):
                open_page(hit, source)

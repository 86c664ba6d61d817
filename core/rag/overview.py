"""Questions for what a document is about ("What is this paper about?", "Summarize the BERT
paper"), which its abstract answers, else the opening and the end of its first section.

"What is this paper about?" shares no word with any passage: over the sample paper, retrieval
led with reference 93, on dropout, and the 0.5B answered that the paper is about dropout.
"""

from __future__ import annotations

import re

from core.rag import naming
from core.rag.bm25 import Bm25Index

_KIND = r"(?:paper|document|article|report|study|book|file|text|manuscript)"
_DOCUMENT = rf"(?:this|the|that)\s+(?:[\w.:-]+\s+){{0,4}}?{_KIND}"  # "the BERT paper"
_WHAT_ABOUT = re.compile(
    rf"\bwhat(?:'s|’s|\s+is|\s+was)\s+(?:{_DOCUMENT}|it|(?:(?-i:[A-Z])[\w.-]*\s+){{1,3}}?)\s*"
    rf"(?:all\s+)?about\b|\b(?:summari[sz]e|sum up|give (?:me )?(?:an? )?(?:overview|summary)"
    rf" of)\s+{_DOCUMENT}\b", re.IGNORECASE)
RETRIEVER = "overview"  # Hit.retriever of a passage placed for what its document is about
_SECTIONS = frozenset({"abstract", "summary", "executive summary", "overview"})
SECTION_END_CHARS = 200  # a shorter chunk of a section's end is a sentence run on past a page


def asks_what_it_is_about(question: str) -> bool:
    return bool(_WHAT_ABOUT.search(question))


def as_the_model_reads_it(question: str) -> str | None:
    """The question as the prompt puts it, where it asks what a document is about: "Summarize
    the paper in one sentence." (asked "What is the BERT paper about?" over BERT's abstract, the
    0.5B answered "The BERT paper about is Pre-training of Deep …"; asked for a summary, with
    what BERT is and does, and as well for the four other papers asked); None for others."""
    if not asks_what_it_is_about(question):
        return None
    kind = re.search(_KIND, question, re.IGNORECASE)
    return f"Summarize the {kind[0].lower() if kind else 'document'} in one sentence."


def chunks(index: Bm25Index, question: str, ranked_docs: list[str],
                    doc_ids: tuple[str, ...], limit: int) -> list[int]:
    """Positions in `index` of at most `limit` passages that say what the document asked about
    is about (the one the question names, else the one retrieval ranked first, as
    core.rag.front_matter's openings choose): its abstract, else the opening and the end of its first section
    after its front matter, else its opening; then those of the next document."""
    openings = naming.opening_positions(index, doc_ids)
    chunks: dict[str, list[tuple[int, str, int]]] = {}  # doc id -> (chunk, section, position)
    for i, m in enumerate(index.metas):
        if m["doc_id"] in openings:
            chunks.setdefault(m["doc_id"], []).append((int(m["chunk"]), m.get("section", ""), i))
    found: list[int] = []
    docs, _ = naming.asked_documents(index, question, ranked_docs, openings,
                                     naming.introductions(index, question, set(openings)))
    for doc in docs:
        ordered = sorted(chunks[doc])
        abstract = next((sec for _, sec, _ in ordered if sec.lower() in _SECTIONS), None)
        if abstract is not None:
            found += [i for _, sec, i in ordered if sec == abstract]
            continue
        titled = {"", index.metas[openings[doc]].get("title", "")}
        first = next((sec for _, sec, _ in ordered if sec not in titled), None)
        body = [i for _, sec, i in ordered if sec == first and first is not None]
        # Its opening, and its end, where a paper says what it brings: the sample paper's
        # introduction opens with what machine learning is, and the 0.5B summarised the paper
        # as being about neural networks; its last paragraph says what the tips are for. A
        # sentence run on past a page break is a chunk of its own, too short to say that.
        ends = [i for i in body[1:] if len(index.texts[i]) >= SECTION_END_CHARS][-(limit - 1):]
        found += [*body[:1], *ends] if body else [openings[doc]]
    return found[:limit]

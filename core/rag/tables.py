"""Tables in a page's text: their captions ("Table 2: SQuAD 1.1 results.") and the paragraphs
of their body (rows of values, a header of names), so that chunking keeps a caption with the
table it describes. Over six of the shared papers, 14 chunks opened with a table's caption and
went on into the next table's rows or other text: BERT's "Table 2: SQuAD 1.1 results." stood
above the SQuAD 2.0 table, and "What F1 does BERT get on SQuAD v1.1?" was answered 89.0, a
SQuAD 2.0 figure. A paper puts its table captions below their tables (BERT, LoRA, GAN) or above
them (the Transformer, RAG, QLoRA); figure captions go below."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.rag.layout import is_heading

_CAPTION = re.compile(r"^(?:Table|Figure|Fig\.)\s*(?:\d+|[A-Z]\d*(?:\.\d+)?)\s*[:.|]\s*\S")
_LOWER_WORD = re.compile(r"^[a-z][a-z'’-]+[,;.]?$")
# a sentence's end ("… of the time."), not a header's abbreviation ("… Label Acc.")
_ENDS_SENTENCE = re.compile(r"(?:^|\s)[a-z][\w-]*[.!?][\"”)]?$|[:!?]$")
_ROW_CHARS = 160  # a line of names this short that ends no sentence is a header or a row


def is_caption(paragraph: str) -> bool:
    return bool(_CAPTION.match(paragraph))


def is_figure_caption(paragraph: str) -> bool:
    return is_caption(paragraph) and not paragraph.startswith("Table")


def is_table_row(paragraph: str) -> bool:
    """A paragraph of a table's body: mostly values ("BERTLARGE (Single) 84.1 90.9 - -"), or a
    short line of names that ends no sentence ("System Dev Test EM F1 EM F1")."""
    tokens = paragraph.split()
    if len(tokens) < 2 or is_caption(paragraph) or is_heading(paragraph):
        return False
    values = sum(map(_is_value, tokens)) / len(tokens)
    lower = sum(bool(_LOWER_WORD.match(t)) for t in tokens) / len(tokens)
    ends = bool(_ENDS_SENTENCE.search(paragraph.rstrip()))
    return lower < 0.5 and (values >= 0.3 or values >= 0.15 and not ends
                            or len(paragraph) <= _ROW_CHARS and not ends)


def _is_value(token: str) -> bool:
    return (any(c.isdigit() for c in token) and sum(c.isalpha() for c in token) <= 2
            or token in "-–—✓✗")


def captions_below(pages: Sequence[Sequence[str]]) -> bool:
    """Whether a document (its pages' paragraphs) puts its table captions below their tables:
    the side its captions have table rows on, most often; below where it cannot tell."""
    vote = 0
    for paragraphs in pages:
        for i, paragraph in enumerate(paragraphs):
            if paragraph.startswith("Table") and is_caption(paragraph):
                vote += ((i > 0 and is_table_row(paragraphs[i - 1]))
                         - (i + 1 < len(paragraphs) and is_table_row(paragraphs[i + 1])))
    return vote >= 0


def is_table(text: str) -> bool:
    """Whether a chunk is a table: a table's caption (a figure's labels are no rows), and rows
    for at least half its text."""
    paragraphs = text.split("\n\n")
    return any(is_caption(p) and not is_figure_caption(p) for p in paragraphs) and \
        sum(len(p) for p in paragraphs if is_table_row(p)) >= len(text) / 2

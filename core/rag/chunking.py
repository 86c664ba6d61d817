"""Split page texts into chunks that remember their page, character span, document title and
section.

Pages arrive cleaned by extraction (core/extract.py): one paragraph per block, blocks apart by a
blank line, headings on their own. Chunks are packed from whole sentences up to the chunk size,
across paragraph ends, and a chunk still far from full takes the first words of the next
sentence, so a chunk is short only where a section or a page ends; a heading always starts a
new chunk, so each chunk belongs to one section. Every chunk is exactly `page_text[start:end]`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import InputError
from core.rag.layout import is_heading, not_after_abbreviation, opens_back_matter

DEFAULT_CHUNK_SIZE = 500  # the reference notebook's setting
DEFAULT_CHUNK_OVERLAP = 50
# Stored in each collection: collections chunked by an older version offer a re-index.
# 1: langchain's recursive splitter over raw layout lines; 2: paragraphs, titles, sections;
# 3: the embedded text leaves the document's title out (Chunk.embedded_text); 4: capitals are
# a heading only when they read as words, and a numbered line that the next line continues in
# lower case is a list item (core.rag.layout.is_heading, table rows and figure labels had
# become sections); 5: a figure's labels dropped, a paragraph break inside a sentence undone,
# and a heading cut after "and", "of"… joined to its last line (core.rag.layout); 6: the
# page number printed at a page's top or foot dropped (core.rag.layout.drop_page_numbers), and a
# hard-wrapped text file's lines joined into paragraphs (core.rag.extract.hard_wrapped); 7: an
# appendix's lettered heading after the references ("C Training setup Details") read as one,
# and a figure's words printed in pieces ("be pe rfe", "ct , bu") dropped; 8: a heading that
# names its kind of part ("Tip 1: Decide whether …", "Step 3 - …") read as one: every chunk of
# the sample paper's ten tips was under "Introduction".
CHUNKING_VERSION = 8
FILL = 0.8  # below this share of the chunk size, a chunk is filled up with words

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = r"(?<=[.!?])\s+(?=[A-Z0-9(\[\"“])"
_SENTENCE_BREAK = re.compile(_SENTENCE_END + r"|\n")  # packing: a list line is a piece too
_SENTENCE = re.compile(not_after_abbreviation(".") + _SENTENCE_END)
_SHORT_SENTENCE = 6  # words: a shorter piece (a heading, a label) joins the next sentence
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Chunk:
    text: str
    page: int  # 1-based
    index: int  # position in the document
    start: int  # character span within the page text
    end: int
    title: str = ""  # the document's
    section: str = ""  # the nearest heading before the chunk

    @property
    def embedded_text(self) -> str:
        """What the embedding model sees: the chunk under its section heading. The document's
        title is left out: every chunk of a document shares it, so it drew all of them toward
        any question using the title's words. In BERT's paper every chunk's cosine to "What are
        the two pre-training tasks of BERT?" lay within 0.05 of the others, and the chunk
        "we pre-train BERT using two unsupervised tasks" ranked 46th; without the title, 8th.
        Over the shared QA sets (default search, answerable questions): SQuAD 2.0 MRR 0.88 ->
        0.91, hit@1 0.81 -> 0.87; QASPER MRR 0.28 -> 0.28, hit@10 0.61 -> 0.61. Keyword search
        keeps the title (contextual_text), where it tells one document from another."""
        return contextual_text("", self.section, self.text)


def contextual_text(title: str, section: str, text: str) -> str:
    """What keyword search sees: a chunk read with its document and section."""
    return " · ".join(part for part in (title, section, text) if part)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The sentences of a chunk as (start, end) spans, a piece of fewer than six words joined
    to its neighbour: on its own a heading or a figure's labels ("NSP Mask LM Mask LM") can
    sit closer to a question than any sentence that answers it."""
    spans: list[tuple[int, int]] = []
    for start, end in _segments(text, 0, _SENTENCE):
        if spans and len(text[spans[-1][0]:spans[-1][1]].split()) < _SHORT_SENTENCE:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    if len(spans) > 1 and len(text[spans[-1][0]:spans[-1][1]].split()) < _SHORT_SENTENCE:
        spans[-2:] = [(spans[-2][0], spans[-1][1])]
    return spans


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    paragraph: int
    heading: bool


def _segments(text: str, offset: int, boundary: re.Pattern) -> Iterator[tuple[int, int]]:
    """The non-blank stretches of `text` between boundaries, as spans shifted by `offset`."""
    last = 0
    for cut in [*boundary.finditer(text), None]:
        stop = cut.start() if cut else len(text)
        piece = text[last:stop]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            yield offset + last + lead, offset + last + len(piece.rstrip())
        if cut:
            last = cut.end()


def _pieces(text: str, chunk_size: int, back_matter: bool) -> Iterator[_Piece]:
    """Headings and sentences (and list lines), each sentence over the chunk size already cut
    into words; `back_matter`: the page starts after the references, where "C Training setup
    Details" is an appendix's heading."""
    for number, (p_start, p_end) in enumerate(_segments(text, 0, _PARAGRAPH_BREAK)):
        paragraph = text[p_start:p_end]
        if is_heading(paragraph, lettered=back_matter):
            back_matter = back_matter or opens_back_matter(paragraph)
            yield _Piece(p_start, p_end, number, True)
            continue
        for start, end in _segments(paragraph, p_start, _SENTENCE_BREAK):
            piece = _Piece(start, end, number, False)
            yield from [piece] if end - start <= chunk_size else _words(text, piece, chunk_size)


def _words(text: str, sentence: _Piece, chunk_size: int) -> list[_Piece]:
    """A sentence as words (a word over the chunk size as slices of it)."""
    return [_Piece(cut, min(cut + chunk_size, end), sentence.paragraph, False)
            for start, end in _segments(text[sentence.start:sentence.end], sentence.start, _SPACE)
            for cut in range(start, end, chunk_size)]


def _page_spans(text: str, chunk_size: int, chunk_overlap: int,
                back_matter: bool) -> Iterator[tuple[int, int, str | None]]:
    """(start, end, heading that opens the chunk or None) for each chunk of one page. A chunk
    less than FILL full takes the first words of a sentence that does not fit whole."""
    pending = deque(_pieces(text, chunk_size, back_matter))
    current: list[_Piece] = []
    while pending:
        piece = pending.popleft()
        if current and (piece.heading or piece.end - current[0].start > chunk_size):
            if (not piece.heading and current[-1].end - current[0].start < FILL * chunk_size
                    and len(words := _words(text, piece, chunk_size)) > 1):
                pending.extendleft(reversed(words))
                continue
            yield current[0].start, current[-1].end, _opening_heading(text, current)
            current = _overlap(current, piece, chunk_size, chunk_overlap)
        current.append(piece)
    if current:
        yield current[0].start, current[-1].end, _opening_heading(text, current)


def _opening_heading(text: str, pieces: list[_Piece]) -> str | None:
    return text[pieces[0].start:pieces[0].end] if pieces[0].heading else None


def _overlap(previous: list[_Piece], nxt: _Piece, chunk_size: int,
             chunk_overlap: int) -> list[_Piece]:
    """The previous chunk's last pieces that repeat at the start of the next one: only when
    the cut falls inside a paragraph, and only whole pieces within the overlap."""
    if nxt.heading:
        return []
    end = previous[-1].end
    kept: list = []
    for piece in reversed(previous):
        if (piece.paragraph != nxt.paragraph or piece.heading or end - piece.start > chunk_overlap
                or nxt.end - piece.start > chunk_size):
            break
        kept.insert(0, piece)
    return kept


def chunk_pages(pages: list[str], chunk_size: int = DEFAULT_CHUNK_SIZE,
                chunk_overlap: int = DEFAULT_CHUNK_OVERLAP, title: str = "") -> list[Chunk]:
    if chunk_overlap >= chunk_size:
        raise InputError(f"chunk overlap ({chunk_overlap}) must be smaller than chunk size "
                         f"({chunk_size})")
    chunks: list[Chunk] = []
    section, back_matter = "", False
    for page_no, text in enumerate(pages, start=1):
        for start, end, heading in _page_spans(text, chunk_size, chunk_overlap, back_matter):
            section = " ".join(heading.split()) if heading else section
            back_matter = back_matter or opens_back_matter(section)
            chunks.append(Chunk(text[start:end], page_no, len(chunks), start, end, title,
                                section))
    return chunks

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
from dataclasses import dataclass, replace

from core.errors import InputError
from core.rag import tables
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
# the sample paper's ten tips was under "Introduction"; 9: a table's caption kept in one chunk
# with the rows of its table (core.rag.tables): captions had opened the next table's chunk.
CHUNKING_VERSION = 9
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
    # a caption above its table (with the rows that fit): nothing before it in its chunk;
    # below its table: nothing after it
    cut_before: bool = False
    cut_after: bool = False


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


def _pieces(text: str, chunk_size: int, back_matter: bool, below: bool) -> Iterator[_Piece]:
    """Headings and sentences (and list lines), each sentence over the chunk size already cut
    into words, and each caption with its table's rows (`_captioned`; `below`: where the
    document puts its table captions); `back_matter`: the page starts after the references,
    where "C Training setup Details" is an appendix's heading."""
    spans = list(_segments(text, 0, _PARAGRAPH_BREAK))
    captioned = _captioned(text, spans, below, chunk_size)
    last = -1
    for number, (p_start, p_end) in enumerate(spans):
        if number <= last:  # in a caption's piece already
            continue
        paragraph = text[p_start:p_end]
        if is_heading(paragraph, lettered=back_matter):
            back_matter = back_matter or opens_back_matter(paragraph)
            yield _Piece(p_start, p_end, number, True)
            continue
        start, end, below_it, last = captioned.get(number, (p_start, p_end, False, -1))
        if last >= 0 and end - start <= chunk_size:
            yield _Piece(start, end, number, False, cut_before=not below_it, cut_after=below_it)
            continue
        # a caption longer than a chunk is cut as prose, but still at its table's side only
        sentences = list(_segments(paragraph, p_start, _SENTENCE_BREAK))
        for k, (start, end) in enumerate(sentences):
            piece = _Piece(start, end, number, False, cut_before=last >= 0 and not below_it and k == 0,
                           cut_after=last >= 0 and below_it and k == len(sentences) - 1)
            yield from [piece] if end - start <= chunk_size else _words(text, piece, chunk_size)


def _captioned(text: str, spans: list[tuple[int, int]], below: bool, chunk_size: int
               ) -> dict[int, tuple[int, int, bool, int]]:
    """The table captions of a page's paragraphs (`spans`), each with as many of its table's
    rows beside it as fit in a chunk: first paragraph -> (start, end, whether the caption is
    below its table, last paragraph). A caption's table is on the side where a table row
    stands next to it, else on the document's side (`below`). A figure's caption is left as
    prose: made a chunk of its own, BERT's "Figure 1: Overall pre-training and fine-tuning
    procedures for BERT." outranked the passage that names its two pre-training tasks."""
    paragraphs = [text[start:end] for start, end in spans]
    rows = [tables.is_table_row(p) for p in paragraphs]
    taken: set[int] = set()
    found = {}
    for i, paragraph in enumerate(paragraphs):
        if not tables.is_caption(paragraph) or tables.is_figure_caption(paragraph) or i in taken:
            continue
        before, after = i > 0 and rows[i - 1], i + 1 < len(rows) and rows[i + 1]
        under = before if before != after else below
        first = last = i
        if len(paragraph) > chunk_size:  # no rows fit beside it
            found[i] = (spans[i][0], spans[i][1], under, i)
            continue
        step = -1 if under else 1
        while (0 <= (j := (first if under else last) + step) < len(rows) and rows[j]
               and j not in taken and spans[max(last, j)][1] - spans[min(first, j)][0] <= chunk_size):
            first, last = min(first, j), max(last, j)
        found[first] = (spans[first][0], spans[last][1], under, last)
        taken.update(range(first, last + 1))
    return found


def _words(text: str, sentence: _Piece, chunk_size: int) -> list[_Piece]:
    """A sentence as words (a word over the chunk size as slices of it), cut where it is."""
    words = [_Piece(cut, min(cut + chunk_size, end), sentence.paragraph, False)
             for start, end in _segments(text[sentence.start:sentence.end], sentence.start, _SPACE)
             for cut in range(start, end, chunk_size)]
    words[0] = replace(words[0], cut_before=sentence.cut_before)
    words[-1] = replace(words[-1], cut_after=sentence.cut_after)
    return words


def _page_spans(text: str, chunk_size: int, chunk_overlap: int, back_matter: bool,
                below: bool) -> Iterator[tuple[int, int, str | None]]:
    """(start, end, heading that opens the chunk or None) for each chunk of one page. A chunk
    less than FILL full takes the first words of a sentence that does not fit whole; a
    caption's piece is never cut into words."""
    pending = deque(_pieces(text, chunk_size, back_matter, below))
    current: list[_Piece] = []
    while pending:
        piece = pending.popleft()
        forced = bool(current) and (piece.heading or piece.cut_before or current[-1].cut_after)
        if current and (forced or piece.end - current[0].start > chunk_size):
            if (not forced and not piece.cut_after
                    and current[-1].end - current[0].start < FILL * chunk_size
                    and len(words := _words(text, piece, chunk_size)) > 1):
                pending.extendleft(reversed(words))
                continue
            yield current[0].start, current[-1].end, _opening_heading(text, current)
            current = [] if forced else _overlap(current, piece, chunk_size, chunk_overlap)
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
    below = tables.captions_below([[page[start:end] for start, end in _segments(page, 0, _PARAGRAPH_BREAK)]
                                   for page in pages])
    for page_no, text in enumerate(pages, start=1):
        for start, end, heading in _page_spans(text, chunk_size, chunk_overlap, back_matter, below):
            section = " ".join(heading.split()) if heading else section
            back_matter = back_matter or opens_back_matter(section)
            chunks.append(Chunk(text[start:end], page_no, len(chunks), start, end, title,
                                section))
    return chunks

"""A passage shown where it stands: its PDF page rendered by pypdfium2 with the passage's
characters highlighted, or, for other formats, the page's text with the passage's span.

A chunk's span points into the page text as extraction cleaned it (Tika's reading order, lines
and hyphenated words joined, ligatures repaired), not into pypdfium2's characters, so the
passage is found again among the page's characters: both texts are folded to their letters and
digits (which cleaning never changes), the passage is looked for whole, else aligned with
difflib around the places where distinctive stretches of it occur."""

from __future__ import annotations

import ctypes
import difflib
import statistics
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageDraw

from core.rag import store
from core.rag.ingest import file_sha256
from core.uploads import upload_folder

# 144 dpi: twice the PDF's own 72, so the text stays sharp on high-density screens once the
# image is fitted to a dialog about 1,000 CSS pixels wide.
SCALE = 2.0
HIGHLIGHT = (255, 196, 0, 100)  # translucent amber: the text under it stays readable
ANCHOR = 12  # folded characters: long enough to occur once on a page
MIN_BLOCK = 4  # shorter difflib matches are chance (common letter pairs and words)
AROUND_CHARS = 1200  # of text shown either side of a passage in a page without an image
AROUND = 0.08  # of a page's height shown above and below a passage, for its context

Box = tuple[float, float, float, float]

# pdfium is not thread-safe, and Streamlit runs each session's script in a thread of its own.
_PDFIUM = threading.Lock()


class Passage(Protocol):
    """A stored chunk where it stands: retrieval's Hit is one."""

    @property
    def doc_id(self) -> str: ...
    @property
    def doc(self) -> str: ...  # file name
    @property
    def page(self) -> int: ...  # 1-based
    @property
    def start(self) -> int: ...  # character span within the cleaned page text
    @property
    def end(self) -> int: ...
    @property
    def text(self) -> str: ...


@dataclass
class PageView:
    page: int  # 1-based, the page shown
    pages: int
    image: Image.Image | None = None  # the rendered PDF page, the passage highlighted
    rects: list[Box] = field(default_factory=list)  # highlights: left, top, right, bottom px
    boxes: list[Box] = field(default_factory=list)  # the same in PDF units: l, b, r, t
    text: str = ""  # without an image: the page's text…
    span: tuple[int, int] | None = None  # …and the passage's place in it
    note: str = ""  # why the page is shown as it is, when that is not plain

    @property
    def highlighted(self) -> bool:
        return bool(self.rects) or self.span is not None

    def text_around(self, margin: int = AROUND_CHARS) -> tuple[str, tuple[int, int]] | None:
        """The page's text from the paragraph about `margin` characters before the passage to
        the one as far after it, and the passage's span in that: a web page is one long page,
        and a cited passage lay some 3,500 pixels down the dialog's 600-pixel box. None
        without a span, or where that is the whole text."""
        if self.span is None:
            return None
        start, end = self.span
        before = self.text.rfind("\n\n", 0, max(0, start - margin))
        after = self.text.find("\n\n", min(len(self.text), end + margin))
        first = before + 2 if before >= 0 else 0
        last = after if after >= 0 else len(self.text)
        if first == 0 and last == len(self.text):
            return None
        return self.text[first:last], (start - first, end - first)

    def around_passage(self, margin: float = AROUND) -> Image.Image | None:
        """The page's full width from a little above the highlights to a little below them
        (`margin`, a share of the page's height): a passage low on a tall page was below the
        dialog's fold. None without an image or highlights."""
        if self.image is None or not self.rects:
            return None
        height = self.image.height
        top = max(0, int(min(r[1] for r in self.rects) - margin * height))
        bottom = min(height, int(max(r[3] for r in self.rects) + margin * height))
        return self.image.crop((0, top, self.image.width, bottom))


def show_page(data_dir: Path, collection, passage: Passage, page: int | None = None) -> PageView:
    """`page` (the passage's own by default) of the passage's document in a collection: the
    kept original when it is a PDF, else the text the collection holds for that page."""
    page = page or passage.page
    original = upload_folder(data_dir, collection.name) / passage.doc
    texts = store.page_texts(store.chunks_of(collection, passage.doc_id))
    kept = original.is_file() and _sha256(*_stamp(original)) == passage.doc_id
    if kept and original.suffix.lower() == ".pdf":
        count = _page_count(*_stamp(original))
        page = min(max(page, 1), count)
        if page != passage.page:
            return PageView(page, count, _render(*_stamp(original), page))
        own = texts.get(page, "")
        image, rects, boxes = _highlighted(*_stamp(original), page, passage.text,
                                           passage.start / max(len(own), 1))
        note = ("" if rects else
                "This page is a scanned image: its text was read by OCR, so the passage cannot "
                "be marked on it." if not _has_text_layer(*_stamp(original), page) else
                "The passage's text could not be found on the rendered page.")
        return PageView(page, count, image, list(rects), list(boxes), note=note)
    count = max(texts, default=1)
    page = min(max(page, 1), count)
    if not texts:  # deleted since the answer was written
        note = "The document is no longer in the collection."
    elif original.suffix.lower() == ".pdf":
        note = ("The original PDF is not kept with the collection (or has changed since), so "
                "the page's text is shown.")
    else:
        note = ""
    span = (passage.start, passage.end) if page == passage.page else None
    return PageView(page, count, text=texts.get(page, ""), span=span, note=note)


Stamp = tuple[str, int, int]


def _stamp(path: Path) -> Stamp:
    """What the caches are keyed by: a file changed in place is read again."""
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


@lru_cache(maxsize=16)
def _page_count(path: str, size: int, mtime_ns: int) -> int:
    import pypdfium2

    with _PDFIUM:
        pdf = pypdfium2.PdfDocument(path)
        try:
            return len(pdf)
        finally:
            pdf.close()


@lru_cache(maxsize=64)
def _has_text_layer(path: str, size: int, mtime_ns: int, page: int) -> bool:
    import pypdfium2

    with _PDFIUM:
        pdf = pypdfium2.PdfDocument(path)
        try:
            return pdf[page - 1].get_textpage().count_chars() > 0
        finally:
            pdf.close()


@lru_cache(maxsize=8)  # about 6 MB a page
def _render(path: str, size: int, mtime_ns: int, page: int) -> Image.Image:
    import pypdfium2

    with _PDFIUM:
        pdf = pypdfium2.PdfDocument(path)
        try:
            # Without annotations: readers' own highlights, which shared papers carry, would
            # be taken for the passage's.
            return (pdf[page - 1].render(scale=SCALE, draw_annots=False).to_pil()
                    .convert("RGB"))
        finally:
            pdf.close()


@lru_cache(maxsize=16)
def _highlighted(path: str, size: int, mtime_ns: int, page: int, text: str,
                 where: float) -> tuple[Image.Image, tuple[Box, ...], tuple[Box, ...]]:
    """The page with the passage highlighted, its highlights in pixels and in PDF units."""
    rects, boxes = _passage_boxes(path, page, text, where)
    image = _render(path, size, mtime_ns, page).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for left, top, right, bottom in rects:
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=HIGHLIGHT)
    return Image.alpha_composite(image, overlay).convert("RGB"), rects, boxes


def _passage_boxes(path: str, page: int, text: str,
                   where: float) -> tuple[tuple[Box, ...], tuple[Box, ...]]:
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    with _PDFIUM:
        pdf = pypdfium2.PdfDocument(path)
        try:
            handle = pdf[page - 1]
            width, height = (round(side * SCALE) for side in handle.get_size())
            textpage = handle.get_textpage()
            letters, index = _folded([chr(pdfium_c.FPDFText_GetUnicode(textpage, i))
                                      for i in range(textpage.count_chars())])
            boxes: list[Box] = []
            for first, last in char_ranges(letters, index, fold(text), where):
                for i in range(textpage.count_rects(first, last - first + 1)):
                    boxes.append(tuple(textpage.get_rect(i)))
            rects = tuple(_to_pixels(handle, box, width, height) for box in boxes)
            return rects, tuple(boxes)
        finally:
            pdf.close()


def _to_pixels(page, box: Box, width: int, height: int) -> Box:
    """pdfium's own page-to-bitmap transform, which knows the crop box and the rotation."""
    import pypdfium2.raw as pdfium_c

    corners = []
    for x, y in ((box[0], box[1]), (box[2], box[3])):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, width, height, 0, x, y, ctypes.byref(dx),
                                   ctypes.byref(dy))
        corners.append((dx.value, dy.value))
    (x0, y0), (x1, y1) = corners
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def fold(text: str) -> str:
    """Letters and digits only, lower-cased, ligatures spelled out: what both extractions
    agree on once spaces, line breaks and hyphens are set aside."""
    return _folded(list(text))[0]


def _folded(chars: list[str]) -> tuple[str, list[int]]:
    """`fold` of a text given character by character, with the index each folded letter came
    from."""
    letters, index = [], []
    for i, char in enumerate(chars):
        for letter in unicodedata.normalize("NFKC", char).lower():
            if letter.isalnum():
                letters.append(letter)
                index.append(i)
    return "".join(letters), index


def char_ranges(letters: str, index: list[int], passage: str,
                where: float) -> list[tuple[int, int]]:
    """The page's character ranges (first, last; inclusive) that hold `passage`, both folded;
    `where` is the passage's place on its page (0 = top, 1 = end) for passages that occur
    there more than once."""
    blocks = _matching_blocks(letters, passage, where)
    ranges: list[tuple[int, int, int]] = []  # first, last, folded end
    for at, size in sorted(blocks):
        first, last = index[at], index[at + size - 1]
        if ranges and ranges[-1][2] == at:  # only spaces, breaks or hyphens between them
            ranges[-1] = (ranges[-1][0], last, at + size)
        else:
            ranges.append((first, last, at + size))
    return [(first, last) for first, last, _ in ranges]


def _matching_blocks(letters: str, passage: str, where: float) -> list[tuple[int, int]]:
    """(position in `letters`, length) of the stretches that match the passage."""
    if not passage:
        return []
    found = _occurrences(letters, passage)
    if found:
        best = min(found, key=lambda at: abs(at / max(len(letters), 1) - where))
        return [(best, len(passage))]
    # Where distinctive stretches of the passage occur once on the page, the passage starts
    # at about their position less their offset in it; difflib then aligns it there only.
    starts = [at - offset for offset in range(0, max(len(passage) - ANCHOR, 1), ANCHOR // 2)
              if len(once := _occurrences(letters, passage[offset:offset + ANCHOR])) == 1
              for at in once]
    if not starts:
        return []
    guess = int(statistics.median(starts))
    slack = len(passage) // 4 + 20
    low, high = max(0, guess - slack), min(len(letters), guess + len(passage) + slack)
    matcher = difflib.SequenceMatcher(None, letters[low:high], passage, autojunk=False)
    return [(low + block.a, block.size) for block in matcher.get_matching_blocks()
            if block.size >= MIN_BLOCK]


def _occurrences(text: str, part: str) -> list[int]:
    found, at = [], text.find(part)
    while at >= 0:
        found.append(at)
        at = text.find(part, at + 1)
    return found

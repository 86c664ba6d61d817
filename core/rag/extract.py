"""Text extraction: Apache Tika (native, through iscc-tika) page by page, pypdfium2 as the PDF
fallback. Every result names the extractor that produced it, and the document's title. With
OCR, a PDF's scanned pages are read one at a time (Tika's own rule picks them), so progress can
count them and a page OCR cannot read leaves the others.

Text laid out on pages comes back cleaned: the layout's hard line breaks undone inside
paragraphs, words cut at a line-end hyphen joined, headings and list items on lines of their
own (see `_layout_text` for why here)."""

from __future__ import annotations

import codecs
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from core.errors import StudioError
from core.rag.layout import (
    document_title,
    drop_page_numbers,
    normalise,
    normalise_pages,
    title_lines,
    unwrap,
    unwrap_pages,
)

MAX_TEXT_CHARS = 20_000_000  # iscc-tika silently truncates at 500,000 chars unless told
OCR_TIMEOUT_S = 600
# Tika's own rule for which PDF pages OCR reads (its AUTO strategy's defaults), applied page by
# page here: a text layer of fewer characters, or with more of them lacking a Unicode mapping.
OCR_BELOW_CHARS = 10
OCR_UNMAPPED_SHARE = 0.1
OcrPageFn = Callable[[int, int], None]  # (scanned pages read so far, scanned pages in all)
NO_TEXT_LAYER = "no text layer (scanned?)"


class ExtractionError(StudioError):
    """A plain-words reason a file gave no text."""


@dataclass
class Extracted:
    pages: list[str]  # one entry per page; a single entry for formats without pages
    extractor: str
    metadata: dict[str, list[str]] = field(default_factory=dict)
    title: str = ""
    note: str | None = None  # something the reader should know, e.g. what the file really is
    ocr_pages: frozenset[int] = frozenset()  # numbers (from 1) of the pages OCR read

    @property
    def text(self) -> str:
        return "\n\n".join(self.pages)

    @property
    def chars(self) -> int:
        return sum(len(p) for p in self.pages)


class _PageSplitter(HTMLParser):
    """Collect text per `<div class="page">` of Tika's XHTML; text outside pages goes to one page."""

    BLOCKS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pages: list[list[str]] = []
        self.loose: list[str] = []
        self._depth_in_page = 0
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("head", "script", "style", "title"):
            self._skip += 1
        elif tag == "div" and ("class", "page") in attrs and not self._depth_in_page:
            self.pages.append([])
            self._depth_in_page = 1
        elif self._depth_in_page and tag == "div":
            self._depth_in_page += 1
        if tag in self.BLOCKS:
            self._target().append("\n")

    def handle_endtag(self, tag):
        if tag in ("head", "script", "style", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag == "div" and self._depth_in_page:
            self._depth_in_page -= 1
        if tag in self.BLOCKS:
            self._target().append("\n")

    def handle_data(self, data):
        if not self._skip:
            self._target().append(data)

    def _target(self) -> list[str]:
        return self.pages[-1] if self._depth_in_page else self.loose


def split_pages(xhtml: str) -> list[str]:
    parser = _PageSplitter()
    parser.feed(xhtml)
    parser.close()
    if parser.pages:
        return ["".join(p) for p in parser.pages]
    return ["".join(parser.loose)]


def _layout_text(pages: list[str], name: str, metadata: dict[str, list[str]]) -> Extracted:
    """Cleaning happens here, at extraction, rather than in the chunker: the cleaned page text
    is then the one text that chunk spans point into, that pages show and highlight, and that
    classification reads, so no span ever has to be mapped back to a raw layout."""
    pages = normalise_pages(drop_page_numbers(pages))
    title = document_title(metadata, pages[0] if pages else "")
    return Extracted(unwrap_pages(pages), name, metadata, title)


def ocr_available() -> bool:
    return shutil.which("tesseract") is not None


TikaOutput = tuple[str, dict[str, list[str]]]  # XHTML, metadata


def _tika_native(path: Path, ocr: bool) -> TikaOutput:
    import iscc_tika

    pdf = iscc_tika.PdfParserConfig().set_extract_annotation_text(False)
    extractor = iscc_tika.Extractor().set_extract_string_max_length(MAX_TEXT_CHARS)
    if ocr:
        # AUTO: only pages with (almost) no text layer are sent to tesseract.
        pdf = pdf.set_ocr_strategy(iscc_tika.PdfOcrStrategy.AUTO)
        extractor = extractor.set_ocr_config(
            iscc_tika.TesseractOcrConfig().set_skip_ocr(False).set_language("eng")
            .set_timeout_seconds(OCR_TIMEOUT_S))
    extractor = extractor.set_pdf_config(pdf).set_xml_output(True)
    try:
        return extractor.extract_file_to_string(str(path))
    except Exception as exc:  # iscc-tika reports every failure as a bare TypeError
        raise ExtractionError(f"Tika could not read it ({exc})") from exc


def _tika_server(path: Path, url: str, ocr: bool) -> TikaOutput:
    """The same extraction by a Tika server (`TIKA_SERVER_URL`), through tika-python."""
    os.environ.setdefault("TIKA_CLIENT_ONLY", "True")  # never try to download and start a jar
    import requests
    from tika import parser

    headers = {"X-Tika-PDFextractAnnotationText": "false",
               "X-Tika-OCRskipOcr": "false" if ocr else "true",
               "writeLimit": str(MAX_TEXT_CHARS)}
    try:
        parsed = parser.from_file(str(path), serverEndpoint=url, xmlContent=True,
                                  headers=headers, requestOptions={"timeout": OCR_TIMEOUT_S})
    except requests.RequestException as exc:
        raise ExtractionError(f"the Tika server at {url} did not answer "
                              f"({exc.__class__.__name__})") from exc
    if parsed.get("status") != 200:
        raise ExtractionError(f"the Tika server at {url} could not read it "
                              f"(HTTP {parsed.get('status')})")
    metadata = {k: v if isinstance(v, list) else [str(v)]
                for k, v in (parsed.get("metadata") or {}).items()}
    return parsed.get("content") or "", metadata


def _tika(path: Path, is_pdf: bool, ocr: bool, tika_url: str | None,
          on_ocr_page: OcrPageFn) -> Extracted:
    name = "tika server" if tika_url else "tika"

    def read(file: Path, with_ocr: bool) -> TikaOutput:
        return _tika_server(file, tika_url, with_ocr) if tika_url else _tika_native(file, with_ocr)

    if not (ocr and is_pdf):
        xhtml, metadata = read(path, ocr)
        _refuse_encrypted(metadata)
        ocr_pages = int((metadata.get("pdf:ocrPageCount") or ["0"])[0] or 0)
        return _layout_text(split_pages(xhtml), _read_by(name, ocr_pages), metadata)
    # A PDF's scanned pages are read one by one: Tika reads them all in one call, seconds a
    # page, and progress stood at 0% until it ended.
    xhtml, metadata = read(path, False)
    _refuse_encrypted(metadata)
    pages = split_pages(xhtml)
    scanned = _scanned_pages(metadata, pages)
    unread: list[int] = []
    with tempfile.TemporaryDirectory(prefix="studio-ocr-") as folder:
        for done, i in enumerate(scanned):
            on_ocr_page(done, len(scanned))
            try:
                pages[i] = "".join(split_pages(read(_one_page(path, i, Path(folder)), True)[0]))
            except ExtractionError:  # a page OCR cannot read leaves the others to be read
                unread.append(i + 1)
    if scanned:
        on_ocr_page(len(scanned), len(scanned))
    read_pages = frozenset(i + 1 for i in scanned if pages[i].strip())
    result = _layout_text(pages, _read_by(name, len(read_pages)), metadata)
    result.ocr_pages = read_pages
    if unread:
        result.note = f"OCR could not read page(s) {', '.join(map(str, unread))}"
    return result


def _read_by(extractor: str, ocr_pages: int) -> str:
    """What read a document: "tika", "tika + OCR (2 pages)"."""
    if not ocr_pages:
        return extractor
    return f"{extractor} + OCR ({ocr_pages} page{'s' if ocr_pages > 1 else ''})"


def _refuse_encrypted(metadata: dict[str, list[str]]) -> None:
    if metadata.get("pdf:encrypted") == ["true"]:
        raise ExtractionError("the PDF is encrypted; remove the password and upload it again")


def _scanned_pages(metadata: dict[str, list[str]], pages: list[str]) -> list[int]:
    """The indexes of the pages that OCR should read, by Tika's own rule (OCR_BELOW_CHARS,
    OCR_UNMAPPED_SHARE) on its counts per page; where it gave no such counts, the pages with
    fewer characters than OCR_BELOW_CHARS."""
    chars = metadata.get("pdf:charsPerPage") or []
    unmapped = metadata.get("pdf:unmappedUnicodeCharsPerPage") or []
    if len(chars) != len(pages) or len(unmapped) != len(pages):
        return [i for i, page in enumerate(pages) if len(page.strip()) < OCR_BELOW_CHARS]
    return [i for i, (n, bad) in enumerate(zip(map(int, chars), map(int, unmapped)))
            if n < OCR_BELOW_CHARS or bad > OCR_UNMAPPED_SHARE * n]


def _one_page(path: Path, index: int, folder: Path) -> Path:
    """Page `index` of the PDF at `path` as a PDF of its own, in `folder`."""
    import pypdfium2

    try:
        source = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as exc:
        raise ExtractionError(f"page {index + 1} could not be taken out ({exc})") from exc
    single = pypdfium2.PdfDocument.new()
    try:
        single.import_pages(source, [index])
        out = folder / f"page-{index + 1}.pdf"
        single.save(str(out))
        return out
    finally:
        single.close()
        source.close()


PLAIN_TEXT = {".txt", ".md"}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def _plain_text(path: Path) -> Extracted:
    """Text files are decoded here: Tika guesses ISO-8859-1 for Windows text and loses
    characters such as Œ and curly quotes. UTF-8 (or a BOM) first, then Windows-1252."""
    data = path.read_bytes()
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    for candidate in ([encoding] if encoding else ["utf-8", "cp1252", "latin-1"]):
        try:
            text = data.decode(candidate)
            break
        except UnicodeDecodeError:
            continue
    text = normalise(text)
    title = title_lines(text.lstrip("# "))  # its own line, before a wrapped title block is joined
    if path.suffix.lower() == ".txt" and hard_wrapped(text):
        text = unwrap(text)
    return Extracted([text], f"text ({candidate})", title=title)


# A text file's line breaks are its author's (a list, a poem, a log) unless its lines run on in
# lower case: text copied out of a PDF or wrapped at 72 columns, whose paragraphs became chunks
# of one line each with hard breaks inside ("solving the" / "problems that…"). Markdown's line
# breaks are its syntax, and stay.
HARD_WRAPPED = 0.3  # of a text's lines that the next line goes on in lower case


def hard_wrapped(text: str) -> bool:
    lines = text.split("\n")
    pairs = [(line, nxt) for line, nxt in zip(lines, lines[1:]) if line.strip() and nxt.strip()]
    return bool(pairs) and sum(nxt[:1].islower() for _, nxt in pairs) >= HARD_WRAPPED * len(pairs)


def _pdfium(path: Path) -> Extracted:
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as exc:
        raise ExtractionError(f"not a readable PDF ({exc})") from exc
    try:
        pages = [page.get_textpage().get_text_range() for page in pdf]
    finally:
        pdf.close()
    return _layout_text(pages, "pypdfium2", {})


# What a file's name promises it holds, as Tika names the types
_HTML = ("an HTML page", ("text/html", "application/xhtml+xml"))
PROMISED = {".pdf": ("a PDF", ("application/pdf",)),
            ".docx": ("a Word document",
                      ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",)),
            ".html": _HTML, ".htm": _HTML}


def extract(path: Path, ocr: bool = False, tika_url: str | None = None,
            on_ocr_page: OcrPageFn = lambda done, pages: None) -> Extracted:
    """Text of a file page by page; raises ExtractionError with a plain reason. With `ocr`,
    pages without a text layer are read by tesseract (slow: seconds per page), a PDF's one by
    one, each told to `on_ocr_page` before it is read. With `tika_url`, a Tika server does the
    work instead of native Tika."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ExtractionError("the file is empty (0 bytes)")
    if ocr and not tika_url and not ocr_available():
        raise ExtractionError("OCR was asked for but tesseract is not installed "
                              "(apt-get install tesseract-ocr)")
    is_pdf = path.suffix.lower() == ".pdf"
    if path.suffix.lower() in PLAIN_TEXT:
        result = _plain_text(path)
    else:
        result = _tika_with_pdf_fallback(path, is_pdf, ocr, tika_url, on_ocr_page)
        # Tika reads what a file holds, whatever its name: a text file named .pdf or .docx is
        # read as text, which is worth saying, as it is not what its name promises.
        found = (result.metadata.get("Content-Type") or [""])[0].split(";")[0]
        promised, types = PROMISED.get(path.suffix.lower(), ("", ()))
        if found and types and found not in types:
            # an executable named .pdf was "no text layer (scanned?); try again with OCR"
            if not result.text.strip():
                raise ExtractionError(f"not {promised}: its content is {found}, with no text in it")
            result.note = f"not {promised}: its content is {found}, read as such"
    if not result.text.strip():
        if not is_pdf:
            raise ExtractionError("no text in the file")
        hint = "; try again with OCR" if ocr_available() and not ocr else ""
        raise ExtractionError(f"{NO_TEXT_LAYER}{hint}")
    return result


def _tika_with_pdf_fallback(path: Path, is_pdf: bool, ocr: bool, tika_url: str | None,
                            on_ocr_page: OcrPageFn) -> Extracted:
    try:
        return _tika(path, is_pdf, ocr, tika_url, on_ocr_page)
    except ExtractionError as tika_error:
        if not is_pdf or "encrypted" in str(tika_error):
            raise
    try:
        return _pdfium(path)
    except ExtractionError:
        raise ExtractionError("the PDF is damaged or incomplete (truncated?): neither Tika "
                              "nor the second PDF reader (pypdfium2) could read it") from None

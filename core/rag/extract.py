"""Text extraction: Apache Tika (native, through iscc-tika) page by page, pypdfium2 as the PDF
fallback. Every result names the extractor that produced it, and the document's title.

Text laid out on pages comes back cleaned: the layout's hard line breaks undone inside
paragraphs, words cut at a line-end hyphen joined, headings and list items on lines of their
own (see `_layout_text` for why here)."""

from __future__ import annotations

import codecs
import os
import re
import shutil
import statistics
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

from core.errors import StudioError

MAX_TEXT_CHARS = 20_000_000  # iscc-tika silently truncates at 500,000 chars unless told
OCR_TIMEOUT_S = 600


class ExtractionError(StudioError):
    """A plain-words reason a file gave no text."""


@dataclass
class Extracted:
    pages: list[str]  # one entry per page; a single entry for formats without pages
    extractor: str
    metadata: dict[str, list[str]] = field(default_factory=dict)
    title: str = ""

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


# PDFs whose fonts lack a Unicode map for ligatures come out as "di\ufffderent", "\ufffdrst".
_BROKEN_LIGATURE = re.compile(r"(\w*)[\ufffd\ufffe](\w*)")
_LIGATURES = ("fi", "ff", "fl", "ffi", "ffl")


@lru_cache(maxsize=1)
def _known_words() -> frozenset[str]:
    """An English word list the Studio already ships: the embedding model's vocabulary."""
    from core.registry import Registry, RegistryError
    from core.settings import load_settings

    try:
        settings = load_settings()
        registry = Registry.load(settings.registry_path, settings.models_dir)
        vocab = registry.load_path(registry.default("embedding")) / "vocab.txt"
        return frozenset(vocab.read_text().split())
    except (RegistryError, OSError):
        return frozenset()


def repair_ligatures(text: str) -> str:
    """Put back the ligature a word lost: the first of fi/ff/fl/ffi/ffl that makes a known word,
    else "fi", by far the most common."""
    words = _known_words()

    def fix(match: re.Match) -> str:
        head, tail = match.group(1), match.group(2)
        for lig in _LIGATURES:
            if f"{head}{lig}{tail}".lower() in words:
                return f"{head}{lig}{tail}"
        return f"{head}fi{tail}"

    return _BROKEN_LIGATURE.sub(fix, text) if ("\ufffd" in text or "\ufffe" in text) else text


_HYPHEN_BREAK = re.compile(r"([\w-]*\w)-\n(\w[\w-]*)")
_WORD_FORM = re.compile(r"\w+(?:-\w+)*")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")


def word_forms(text: str) -> frozenset[str]:
    """The words and hyphenated compounds a text uses on one line, lower-cased: the evidence
    for how it spells a word that a line break cut at a hyphen."""
    return frozenset(m.group(0).lower() for m in _WORD_FORM.finditer(text))


def join_hyphen_breaks(text: str, seen: frozenset[str] = frozenset()) -> str:
    """"repre-\nsentation" becomes "representation", but "pre-\ntraining" stays "pre-training"
    in a paper that writes "pre-training", and "state-of-\nthe-art" keeps its hyphen. The
    document's own spelling decides first, then the word list, then the parts: two real words
    ("left-\nright") or a part that is no lower-case word ("GPT-\n2") keep their hyphen, a word
    cut in two ("bidirec-\ntional") is joined."""
    words = _known_words()

    def fix(match: re.Match) -> str:
        head, tail = match.group(1), match.group(2)
        hyphenated, joined = f"{head}-{tail}", f"{head}{tail}"
        if hyphenated.lower() in seen:
            return hyphenated
        if joined.lower() in seen or joined.lower() in words:
            return joined
        last, first = head.split("-")[-1].lower(), tail.split("-")[0].lower()
        both_words = last in words and first in words and len(last) > 1
        return hyphenated if both_words or not tail[0].islower() else joined

    return _HYPHEN_BREAK.sub(fix, text)


def normalise(text: str, seen: frozenset[str] | None = None) -> str:
    """NFKC, lost ligatures put back, words hyphenated across a line break joined (spelled as
    `seen`, the document's word forms, spell them), runs of whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = repair_ligatures(text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = join_hyphen_breaks(text, word_forms(text) if seen is None else seen)
    return _BLANK_LINES.sub("\n\n", text).strip()


# Text laid out on a page: its line breaks are the layout's, not the author's.
_NUMBERED_HEADING = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2}){0,3}\.?|[A-Z](?:\.\d{1,2}){1,3}\.?"
                               r"|[IVX]{1,4}\.)\s+(\S.*)$")
_NAMED_HEADINGS = frozenset({
    "abstract", "introduction", "background", "related work", "method", "methods",
    "experiments", "results", "discussion", "limitations", "conclusion", "conclusions",
    "acknowledgements", "acknowledgments", "references", "bibliography", "appendix"})
_LIST_ITEM = re.compile(r"^(?:[•·▪‣◦●∙*–-]\s|\(?[a-z0-9]{1,3}\)\s|\[\d{1,3}\]\s)")
_SENTENCE_END = re.compile(r"[.!?:][\"'”’)\]]?$")
_PARAGRAPH_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)(?<!\bFig)(?<!\bEq)(?<!\bvs)(?<!\bcf)"
                            r"[.!?][\"'”’)\]]?$")
_FRAGMENT = 5  # characters: vertical text (the arXiv stamp) comes out a few letters a line


def is_heading(line: str) -> bool:
    """A section heading: "3.1 Pre-training BERT", "Abstract", "A.2 Details", "RELATED WORK".
    Table rows and wrapped sentences that begin with a number are told apart by their words:
    a heading names its section in a few words, none of them a bare number."""
    line = line.strip()
    if line.lower() in _NAMED_HEADINGS:
        return True
    if not 3 <= len(line) <= 80 or line[-1] in ".,;:":
        return False
    numbered = _NUMBERED_HEADING.match(line)
    if numbered:
        words = numbered.group(1).split()
        return (len(words) <= 8 and words[0][0].isupper()
                and not any(w.strip(".,()%").replace(".", "").isdigit() for w in words))
    words = line.split()
    letters = [c for c in line if c.isalpha()]
    return (2 <= len(words) <= 8 and len(letters) >= 6 and all(c.isupper() for c in letters)
            and len(set(words)) == len(words))


def unwrap(text: str) -> str:
    """Lines inside a paragraph joined into one; paragraphs, headings and list items kept on
    their own lines; runs of letter fragments (vertical text) dropped."""
    blocks = text.split("\n\n")
    keep = [not _in_fragment_run(blocks, i) for i in range(len(blocks))]
    return "\n\n".join(_unwrap_paragraph(b) for b, k in zip(blocks, keep) if k)


def _in_fragment_run(blocks: list[str], i: int, run: int = 4) -> bool:
    short = [len(b) <= _FRAGMENT for b in blocks]
    return short[i] and any(all(short[j:j + run]) for j in range(max(0, i - run + 1), i + 1)
                            if j + run <= len(short))


def _unwrap_paragraph(block: str) -> str:
    """A heading becomes a paragraph of its own, and so does the text after a line that ends
    a sentence well short of the paragraph's width when a capital follows: a paragraph end
    the layout did not mark (pypdfium2 marks none)."""
    lines = block.split("\n")
    width = statistics.median(len(line) for line in lines)  # hyphen joins lengthen a few
    out, prev_heading = lines[0], is_heading(lines[0])
    for prev, line in zip(lines, lines[1:]):
        ends_sentence = bool(_SENTENCE_END.search(prev))
        heading = is_heading(line) and (ends_sentence or prev_heading)
        paragraph_end = (_PARAGRAPH_END.search(prev) and len(prev) < 0.7 * width
                         and line[:1].isupper())
        if heading or prev_heading or paragraph_end:
            out += "\n\n" + line
        elif _LIST_ITEM.match(line):
            out += "\n" + line
        else:
            out += " " + line
        prev_heading = heading
    return out


def normalise_pages(pages: list[str]) -> list[str]:
    """Every page normalised with the whole document's spelling as evidence for hyphens."""
    seen = word_forms("\n".join(pages))
    return [normalise(page, seen) for page in pages]


def _layout_text(pages: list[str], name: str, metadata: dict[str, list[str]]) -> Extracted:
    """Cleaning happens here, at extraction, rather than in the chunker: the cleaned page text
    is then the one text that chunk spans point into, that pages show and highlight, and that
    classification reads, so no span ever has to be mapped back to a raw layout."""
    pages = normalise_pages(pages)
    title = document_title(metadata, pages[0] if pages else "")
    return Extracted([unwrap(page) for page in pages], name, metadata, title)


def _title_lines(first_page: str) -> str:
    """The title a paper prints at its top: the first line that reads like one, continued
    while it ends mid-phrase ("… Transformers for" / "Language Understanding")."""
    lines = [line for line in first_page.split("\n") if line.strip()]
    for i, line in enumerate(lines[:8]):
        letters = sum(c.isalpha() for c in line)
        if (len(line.split()) >= 2 and letters >= 0.6 * len(line) and len(line) <= 150
                and not line.lower().startswith("arxiv") and "@" not in line):
            title = line
            for more in lines[i + 1:i + 3]:
                if not title.split()[-1].islower() or len(title) > 200:
                    break
                title = f"{title} {more}"
            return title.strip()
    return ""


_UNTITLED = re.compile(r"^(untitled|microsoft word|document\d*$|.*\.(pdf|docx?|tex|dvi)$)", re.I)


def document_title(metadata: dict[str, list[str]], first_page: str) -> str:
    """The PDF's own title when it is meaningful (not empty, not a file name or "Microsoft
    Word - …"), else the title printed at the top of the first page."""
    for key in ("dc:title", "pdf:docinfo:title", "title"):
        value = " ".join((metadata.get(key) or [""])[0].split())
        if len(value.split()) >= 2 and not _UNTITLED.match(value):
            return value
    return _title_lines(first_page)


def ocr_available() -> bool:
    return shutil.which("tesseract") is not None


def _tika_native(path: Path, ocr: bool) -> Extracted:
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
        xhtml, metadata = extractor.extract_file_to_string(str(path))
    except Exception as exc:  # iscc-tika reports every failure as a bare TypeError
        raise ExtractionError(f"Tika could not read it ({exc})") from exc
    return _from_tika(xhtml, metadata, "tika")


def _tika_server(path: Path, url: str, ocr: bool) -> Extracted:
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
    return _from_tika(parsed.get("content") or "", metadata, "tika server")


def _from_tika(xhtml: str, metadata: dict[str, list[str]], name: str) -> Extracted:
    if metadata.get("pdf:encrypted") == ["true"]:
        raise ExtractionError("the PDF is encrypted; remove the password and upload it again")
    ocr_pages = int((metadata.get("pdf:ocrPageCount") or ["0"])[0] or 0)
    if ocr_pages:
        name += f" + OCR ({ocr_pages} pages)"
    return _layout_text(split_pages(xhtml), name, metadata)


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
    return Extracted([text], f"text ({candidate})", title=_title_lines(text.lstrip("# ")))


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


def extract(path: Path, ocr: bool = False, tika_url: str | None = None) -> Extracted:
    """Text of a file page by page; raises ExtractionError with a plain reason. With `ocr`,
    pages without a text layer are read by tesseract (slow: seconds per page). With
    `tika_url`, a Tika server does the work instead of native Tika."""
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
        result = _tika_with_pdf_fallback(path, is_pdf, ocr, tika_url)
    if not result.text.strip():
        if not is_pdf:
            raise ExtractionError("no text in the file")
        hint = "; try again with OCR" if ocr_available() and not ocr else ""
        raise ExtractionError(f"no text layer (scanned?){hint}")
    return result


def _tika_with_pdf_fallback(path: Path, is_pdf: bool, ocr: bool,
                            tika_url: str | None) -> Extracted:
    try:
        return _tika_server(path, tika_url, ocr) if tika_url else _tika_native(path, ocr)
    except ExtractionError as tika_error:
        if not is_pdf or "encrypted" in str(tika_error):
            raise
    try:
        return _pdfium(path)
    except ExtractionError:
        raise ExtractionError("the PDF is damaged or incomplete (truncated?): neither Tika "
                              "nor pypdfium2 could read it") from None

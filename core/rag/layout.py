"""Page text as a layout gives it, made readable: ligatures a font lost put back, words cut at a
line-end hyphen joined, the hard line breaks inside paragraphs undone, headings and list items
kept on lines of their own; and the document's title. Used at extraction (core.rag.extract), so
the cleaned text is the one that chunk spans point into."""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter
from functools import lru_cache

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
# A paragraph break the layout put inside a sentence: after a line of prose that ends
# mid-phrase (a lower-case letter, a comma, a hyphen) and before one that goes on in lower
# case. Shorter lines are left alone: they are the letters of vertical text or of a formula.
# A word broken with a hyphen goes on in any line; a sentence, only in a line longer than
# vertical text's few letters: BERT's first page ends "…id of the masked" beside the arXiv
# stamp's "ar" / "X", which was read as its next word.
_BROKEN_PARAGRAPH = re.compile(
    r"^([^\n]{19,}(?:-|[a-z,;](?=\n{2,}[a-z][^\n]{5,})))\n{2,}(?=[a-z])", re.M)


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
    """NFKC, lost ligatures put back, paragraph breaks inside a sentence undone, words
    hyphenated across a line break joined (spelled as `seen`, the document's word forms,
    spell them), runs of whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = repair_ligatures(text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BROKEN_PARAGRAPH.sub(r"\1\n", text)
    text = join_hyphen_breaks(text, word_forms(text) if seen is None else seen)
    return _BLANK_LINES.sub("\n\n", text).strip()


# Text laid out on a page: its line breaks are the layout's, not the author's.
_NUMBERED_HEADING = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2}){0,3}\.?|[A-Z](?:\.\d{1,2}){1,3}\.?"
                               r"|[IVX]{1,4}\.)\s+(\S.*)$")
_LETTERED_HEADING = re.compile(r"^[A-Z]\s+(\S.*)$")
# A heading that says what kind of part it heads: "Tip 1: Decide whether deep learning is
# appropriate for your problem", "Step 3 - Clean the data", "Chapter IV. The Return". Not a
# figure's or a table's caption ("Figure 1: The Transformer"), which the kinds leave out.
PART_KINDS = ("Tip", "Step", "Rule", "Lesson", "Chapter", "Part", "Section", "Article",
              "Principle", "Recommendation", "Guideline", "Phase", "Stage", "Module", "Unit",
              "Exercise", "Question", "Case Study", "Day", "Week")
_LABELLED_HEADING = re.compile(
    rf"^(?:{'|'.join(PART_KINDS)})"
    r"\s+(?:\d{1,3}|[IVXL]{1,6}|[A-Z])\s*[:.–—-]\s+[A-Z\d]\S*(?:\s+\S+){0,15}$")
# Headings after which a lettered heading begins an appendix
_BACK_MATTER = frozenset({"references", "bibliography", "appendix", "appendices"})
_NAMED_HEADINGS = frozenset({
    "abstract", "introduction", "background", "related work", "method", "methods",
    "experiments", "results", "discussion", "limitations", "conclusion", "conclusions",
    "acknowledgements", "acknowledgments", "references", "bibliography", "appendix"})
_LIST_ITEM = re.compile(r"^(?:[•·▪‣◦●∙*–-]\s|\(?[a-z0-9]{1,3}\)\s|\[\d{1,3}\]\s)")
_SENTENCE_END = re.compile(r"[.!?:][\"'”’)\]]?$")
_ABBREVIATIONS = ("al", "e.g", "i.e", "Fig", "Eq", "vs", "cf")  # their full stop ends no sentence


def not_after_abbreviation(stop: str = "") -> str:
    """Lookbehinds that fail right after an abbreviation (followed by `stop`)."""
    return "".join(rf"(?<!\b{re.escape(a + stop)})" for a in _ABBREVIATIONS)


_PARAGRAPH_END = re.compile(not_after_abbreviation() + r"[.!?][\"'”’)\]]?$")
_FRAGMENT = 5  # characters: vertical text (the arXiv stamp) comes out a few letters a line
_LABEL = 60  # characters
_LOWER_WORD = re.compile(r"\b[a-z]{2,}\b")
_VALUE = re.compile(r"\d[.,]\d|\d\d|%")
_GLUED = re.compile(r"[A-Za-z]\d|[A-Za-z]\[|\][A-Za-z0-9]")
_CAPITAL_WORD = re.compile(r"[A-Z][A-Z'’&-]*[.:]?|&|\d{1,3}\.?")


def opens_back_matter(heading: str) -> bool:
    """The references or the appendices begin here."""
    return " ".join(heading.split()).lower() in _BACK_MATTER


def is_heading(line: str, lettered: bool = False) -> bool:
    """A section heading: "3.1 Pre-training BERT", "Abstract", "A.2 Details", "RELATED WORK",
    "Tip 1: Decide whether deep learning is appropriate for your problem";
    with `lettered` (in a paper's back matter) also an appendix's "C Training setup Details",
    which elsewhere could be a sentence ("A Transformer …" on a line of its own).
    Table rows and wrapped sentences that begin with a number are told apart by their words:
    a heading names its section in a few words, none of them a bare number."""
    line = line.strip()
    if line.lower() in _NAMED_HEADINGS:
        return True
    if _LABELLED_HEADING.match(line) and line[-1] not in ".,;:":
        return len(line) <= 120
    if not 3 <= len(line) <= 80 or line[-1] in ".,;:":
        return False
    numbered = _NUMBERED_HEADING.match(line) or (lettered and _LETTERED_HEADING.match(line))
    if numbered:
        words = numbered.group(1).split()
        return (len(words) <= 8 and words[0][0].isupper()
                and not any(w.strip(".,()%").replace(".", "").isdigit() for w in words)
                # a table's header of letters: "U S A U S A U S A"
                and (not lettered or len(set(words)) == len(words) > 0
                     and any(len(w) > 2 for w in words)))
    words = line.split()
    letters = [c for c in line if c.isalpha()]
    return (2 <= len(words) <= 8 and len(letters) >= 6 and all(c.isupper() for c in letters)
            and len(set(words)) == len(words) and _mostly_words(words))


def _mostly_words(words: list[str]) -> bool:
    """Capitals that read as words ("RELATED WORK", "ARTICLE I", "SECTION 3"), not a table's
    header or a figure's labels ("BERTBASE 81.6 -", "E[CLS] E1 E[SEP]", "MASK SAME RND MNLI
    NER"): every word made of letters (or a bare number), and more than half of the lettered
    ones English when the word list is at hand."""
    if not all(_CAPITAL_WORD.fullmatch(w) for w in words):
        return False
    lettered = [w.strip(".:").lower() for w in words if not w[0].isdigit()]
    known = _known_words()
    return bool(lettered) and (not known or 2 * sum(w in known for w in lettered) > len(lettered))


def unwrap_pages(pages: list[str]) -> list[str]:
    """Each page unwrapped, those after the references' heading as back matter."""
    unwrapped, back_matter = [], False
    for page in pages:
        text, back_matter = _unwrap(page, back_matter)
        unwrapped.append(text)
    return unwrapped


def unwrap(text: str) -> str:
    """Lines inside a paragraph joined into one; paragraphs, headings and list items kept on
    their own lines; runs of letter fragments (vertical text) and of a figure's labels
    dropped."""
    return _unwrap(text, False)[0]


def _unwrap(text: str, back_matter: bool) -> tuple[str, bool]:
    """unwrap's text, and whether it ends past the references. `back_matter`: the text starts
    after them, where a lettered line ("A QLoRA vs Standard Finetuning Experimental Setup
    Details") heads an appendix."""
    blocks = text.split("\n\n")
    fragments = [len(b) <= _FRAGMENT for b in blocks]
    labels = [_is_label(b) for b in blocks]
    pieces = [_is_word_pieces(b) for b in blocks]
    dropped = (_in_run(fragments, 4)
               | {i for i in _in_run(labels, 3)
                  if any(_is_symbolic(blocks[j]) for j in _run_of(labels, i))}
               | {i for i in _in_run(pieces, _PIECES_RUN) if _mostly_scraps(
                   [w for j in _run_of(pieces, i) for w in blocks[j].split()])})
    kept = []
    for i, block in enumerate(blocks):
        if i not in dropped:
            kept.append(_unwrap_paragraph(block, back_matter))
            back_matter = back_matter or any(map(opens_back_matter, kept[-1].split("\n\n")))
    return "\n\n".join(_join_wrapped_headings("\n\n".join(kept).split("\n\n"))), back_matter


_DANGLING = frozenset({"a", "an", "and", "by", "for", "from", "in", "of", "on", "or", "the", "to",
                       "via", "vs", "with"})


def _join_wrapped_headings(paragraphs: list[str]) -> list[str]:
    """A heading that a line break cut after a word that cannot end it ("A.4 Comparison of
    BERT, ELMo ,and" / "OpenAI GPT") joined to its short last line."""
    out: list[str] = []
    for paragraph in paragraphs:
        last = out[-1].split()[-1:] if out else []
        if (last and last[0].strip(",;-").lower() in _DANGLING and "\n" not in paragraph
                and len(paragraph) <= _LABEL and is_heading(out[-1])
                and is_heading(joined := f"{out[-1]} {paragraph}")):
            out[-1] = joined
        else:
            out.append(paragraph)
    return out


def _in_run(flags: list[bool], run: int) -> set[int]:
    """The positions inside stretches of at least `run` consecutive set flags."""
    return {i for i in range(len(flags)) if len(_run_of(flags, i)) >= run}


def _run_of(flags: list[bool], i: int) -> range:
    if not flags[i]:
        return range(0)
    start, end = i, i + 1
    while start > 0 and flags[start - 1]:
        start -= 1
    while end < len(flags) and flags[end]:
        end += 1
    return range(start, end)


def _is_label(block: str) -> bool:
    """Short text with no lower-case word and no measured value: what a figure's boxes and
    arrows say ("Trm Trm Trm", "E[CLS] E1 E[SEP]", "OpenAI GPT"). A table's rows carry values
    and a form's fields a colon ("Name: Jane Roe"); both stay."""
    return (len(block) <= _LABEL and ":" not in block and not _LOWER_WORD.search(block)
            and not _VALUE.search(block) and not is_heading(block))


# A figure that prints words cut into pieces (the Transformer paper's attention maps: "ill ne",
# "ve r", "be pe rfe", "ct , bu" …, forty lines a page) comes out as a run of short blocks of
# short pieces, most of them one or two letters: it read as text, and showed as such beside
# answers.
_PIECES_RUN = 6
_PIECE_BLOCK = 16  # characters


def _is_word_pieces(block: str) -> bool:
    return (len(block) <= _PIECE_BLOCK and not any(c.isdigit() for c in block)
            and all(len(w) <= 4 for w in block.split()))


def _mostly_scraps(words: list[str]) -> bool:
    return 2 * sum(len(w) <= 2 for w in words) >= len(words)


def _is_symbolic(block: str) -> bool:
    """Labels no prose or form has: a word glued to a number or a bracket ("E1", "T[SEP]"), a
    word said twice in a row ("Trm Trm"), or an ellipsis on its own."""
    words = block.split()
    return (bool(_GLUED.search(block)) or block.strip() in ("...", "…")
            or any(a == b for a, b in zip(words, words[1:])))


def _unwrap_paragraph(block: str, lettered: bool) -> str:
    """A heading becomes a paragraph of its own, and so does the text after a line that ends
    a sentence well short of the paragraph's width when a capital follows: a paragraph end
    the layout did not mark (pypdfium2 marks none). `lettered`: is_heading's."""
    lines = block.split("\n")
    width = statistics.median(len(line) for line in lines)  # hyphen joins lengthen a few
    # A line the next one continues in lower case is no heading: "1. Question: Does BERT
    # really need such" / "a large amount of pre-training …" is a list item.
    continued = [nxt[:1].islower() for nxt in lines[1:]] + [False]
    out, prev_heading = lines[0], is_heading(lines[0], lettered) and not continued[0]
    for i, (prev, line) in enumerate(zip(lines, lines[1:]), start=1):
        ends_sentence = bool(_SENTENCE_END.search(prev))
        lettered = lettered or opens_back_matter(prev)
        heading = (is_heading(line, lettered) and (ends_sentence or prev_heading)
                   and not continued[i])
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


# A page's number printed at its top or foot: "7", "- 7 -", "Page 7", "7 of 12". Left in, it
# ended a chunk as a lone "7", which the 0.5B wrote into an answer ("… generation. [1] 7 [3]"),
# and it broke a sentence that runs on to the next page.
_PAGE_NUMBER = re.compile(r"^(?:page\s+)?[-–—]?\s*(\d{1,4})\s*[-–—]?(?:\s*(?:of|/)\s*\d{1,4})?$",
                          re.IGNORECASE)


def drop_page_numbers(pages: list[str]) -> list[str]:
    """Each page without the line that only gives its number, as first or last line. A lone
    number there is a page number when two pages or more agree on how it follows the page's
    place ("2" on the second page, or "12" on the second of an article printed from page
    11); a table's last value does not."""
    found: dict[tuple[int, int], int] = {}  # (page, line) -> printed number - page index
    split = [page.split("\n") for page in pages]
    for i, lines in enumerate(split):
        filled = [j for j, line in enumerate(lines) if line.strip()]
        for j in filled[:1] + filled[-1:]:
            if m := _PAGE_NUMBER.match(lines[j].strip()):
                found[(i, j)] = int(m.group(1)) - i
    if not found:
        return pages
    offset, agreeing = Counter(found.values()).most_common(1)[0]
    if agreeing < 2:
        return pages
    return ["\n".join(line for j, line in enumerate(lines) if found.get((i, j)) != offset)
            for i, lines in enumerate(split)]


def normalise_pages(pages: list[str]) -> list[str]:
    """Every page normalised with the whole document's spelling as evidence for hyphens."""
    seen = word_forms("\n".join(pages))
    return [normalise(page, seen) for page in pages]



# arXiv's stamp, which text copied out of a paper's PDF glues to its title: "arXiv:2505.23724v1
# [cs.LG]  29 May 2025SC-LoRA: Balancing …"
_ARXIV_STAMP = re.compile(r"^arxiv:\S+\s+\[[^\]]*\]\s+\d{1,2}\s+[a-z]{3,9}\s+\d{4}", re.IGNORECASE)


def title_lines(first_page: str) -> str:
    """The title a paper prints at its top: the first line that reads like one, continued
    while it ends mid-phrase ("… Transformers for" / "Language Understanding")."""
    lines = [stripped for line in first_page.split("\n")
             if (stripped := _ARXIV_STAMP.sub("", line).strip())]
    for i, line in enumerate(lines[:8]):
        letters = sum(c.isalpha() for c in line)
        if (len(line.split()) >= 2 and letters >= 0.6 * len(line) and len(line) <= 150
                and not line.lower().startswith("arxiv") and "@" not in line
                and not _is_prose(line)):
            title = line
            for more in lines[i + 1:i + 3]:
                if not title.split()[-1].islower() or len(title) > 200:
                    break
                title = f"{title} {more}"
            return title.strip()
    return ""


TITLE_WORDS = 12  # a longer line that ends a sentence is prose


def _is_prose(line: str) -> bool:
    """A sentence, not a title: a text file that opens "Dear Ms Brown, thank you for your
    letter about the garden fence. The fence will be repaired …" had that line for its title,
    shown above each of its chunks."""
    return len(line.split()) > TITLE_WORDS and bool(_SENTENCE_END.search(line))


_UNTITLED = re.compile(r"^(untitled|microsoft word|document\d*$|.*\.(pdf|docx?|tex|dvi)$)", re.I)


def document_title(metadata: dict[str, list[str]], first_page: str) -> str:
    """The PDF's own title when it is meaningful (not empty, not a file name or "Microsoft
    Word - …"), else the title printed at the top of the first page."""
    for key in ("dc:title", "pdf:docinfo:title", "title"):
        value = " ".join((metadata.get(key) or [""])[0].split())
        if len(value.split()) >= 2 and not _UNTITLED.match(value):
            return value
    return title_lines(first_page)


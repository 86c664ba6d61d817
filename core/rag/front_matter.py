"""Questions about a document itself (who wrote it, what it is called, where its authors work,
who its parties are), which its opening chunk answers (the title block of a paper, the heading
of a letter, an agreement's preamble) and no retriever finds: the question shares no word with a
list of names ("wrote", "paper"), and MiniLM puts "Who wrote the BERT paper?" at cosine 0.32 to
BERT's title block, 40th of its 153 chunks, so the 0.5B model read three passages about
pre-training and answered "OpenAI"."""

from __future__ import annotations

import re

from core.rag import naming, overview
from core.rag.bm25 import Bm25Index

# Narrow on purpose: "What do the authors propose?" asks about the content, and QASPER asks it
# that way dozens of times; only asking *who* the authors are, or for the title, is about the
# document.
_ABOUT_DOCUMENT = re.compile(
    r"\bwho\b[^.?!]*\b(wrote|writes|written|authored|authors?)\b"
    r"|\b(names?|list) of (the|its) authors\b|\bauthors[’']? (names|affiliations?)\b"
    r"|\baffiliations?\b|\bwhere (are|were|do|did) the authors\b"
    r"|\btitle of (the|this|that) (paper|document|article|report|study|book)\b",
    re.IGNORECASE)
# Where one of them works ("Where does Aidan N. Gomez work?"): their paper's title block says
# so; retrieval found BERT's references, which cite Gomez, and the 0.5B answered "University of
# California, Berkeley".
_WHERE_PERSON_WORKS = re.compile(r"\b[Ww]here (?:does|did|do) (?:[A-Z][\w.'’-]*\s+){1,3}"
                                 r"[A-Z][\w'’-]* work\b")
_WHERE_AUTHORS_WORK = re.compile(r"\baffiliations?\b|\bwhere (are|were|do|did) the authors\b",
                                 re.IGNORECASE)
# Who the parties to an agreement are, not what they must do ("What must the parties do?").
# CUAD's annotators marked the parties of 497 contracts: the first mention lies within the
# first 500 characters for 88% of them (the preamble), and a form names them where it is signed
# (the Square One statement of work: "Client {ClientCo, Inc.}" above the signatures), so both
# ends of the document are read.
_PARTIES = re.compile(
    r"\bwho (are|were) the (\w+ )?parties\b|\bwho (is|are|was|were) (a )?part(y|ies) to\b"
    r"|\b(names?|list) of the (\w+ )?parties\b|\bwhich (companies|parties|people|persons) "
    r"(are|were) (party|parties)\b|\bbetween whom\b|\bwho (signed|signs|executed)\b",
    re.IGNORECASE)
RETRIEVER = "front matter"  # how a hit added here says where it came from (Hit.retriever)


# A title block's footnote marks ("Pouget-Abadie∗", "Hu*") and e-mail addresses: given "Jean
# Pouget-Abadie∗, Mehdi Mirza, …" the 0.5B wrote "Pouget-Abadie*" and ended its answer there, two
# names of GAN's eight; without them it wrote all eight, and QLoRA's four instead of three.
_FOOTNOTE_MARK = re.compile(r"[∗†‡§¶]+|(?<=[^\W\d_])\*+"
                            # "?" where extraction lost a symbol font's star: "Perez?,", "; ?New"
                            r"|(?<=[^\W\d_])\?(?=,)|(?<=[\s;,])\?(?=[A-Z])")
# with the angle brackets around one ("Herbert Rudolf <hr@superco.com>" read "Herbert Rudolf <>")
_EMAIL = re.compile(r"\{[^{}]*\}@[\w.-]+|\s*<[\w.+-]+@[\w-]+(?:\.[\w-]+)+>|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


# Manubot's funding note after an author's affiliations: not who they are or where they work
_FUNDED = re.compile(r"\s*·?\s*Funded by\b.*")


def _listed_by_orcid(text: str, where_they_work: bool) -> str:
    """A title block that marks its authors with ORCID iDs, as their names in one list, then
    where each one works in a sentence of its own, without the iDs, handles and funding. Given
    the sample paper's block as it is, the 0.5B named 5 of its 20 authors, two of them garbled
    from handles ("Sebastian Rasbt"). Given "Name: affiliations" or "Name (affiliations)"
    lines, it answered 3 of 7 "Where does X work?" with the line above or below; given "X
    works at …", all 7, but "Who are the authors?" with the first of those sentences, until
    the sentences came under a line of their own, "Where they work:". Those are only given
    `where_they_work`: they made the prompt about 1,000 tokens longer, its first word 5 s
    later."""
    lines = text.split("\n")
    entries: list[tuple[int, int, str, str]] = []  # (first line, last line, name, affiliations)
    for i, line in enumerate(lines):
        found = naming.ORCID.search(line)
        if not found:
            continue
        first, name = i, line[:found.start()].strip()
        if not name:  # the name on a line of its own before the iD's
            first = next((j for j in range(i - 1, -1, -1) if lines[j].strip()), -1)
            name = lines[first].strip() if first >= 0 else ""
        if not name or (entries and first <= entries[-1][1]):
            return text
        # the next line says where they work; a line after it that opens with "·", funding
        at = next((j for j in range(i + 1, len(lines)) if lines[j].strip()), i)
        where = "" if at == i or naming.ORCID.search(lines[at]) else _FUNDED.sub("", lines[at])
        last = at if where else i
        while where and last + 1 < len(lines) and lines[last + 1].lstrip().startswith("·"):
            last += 1
        entries.append((first, last, name, where.strip()))
    if not entries:
        return text
    listed = [", ".join(e[2] for e in entries)]
    if where_they_work:
        listed += ["", "Where they work:"]
        listed += [f"{name} works at {where}." for _, _, name, where in entries if where]
    return "\n".join(lines[:entries[0][0]] + listed + [""] + lines[entries[-1][1] + 1:])


def readable(text: str, title: str = "", where_they_work: bool = True) -> str:
    """A title block as the model reads it: the authors as a list with commas, then their
    affiliations (grouped by affiliation where the block gives one per author), without
    footnote marks, affiliation numbers and e-mail addresses (the Retrieved-chunks panel still
    shows the text as it is); of authors marked with ORCID iDs, the affiliations only
    `where_they_work` (`_listed_by_orcid`).
    Lines that are not lists of names (the document's `title`, an address, the abstract) keep
    their words: read as names, "Square One Offer Letter" became "Square One, Offer Letter"."""
    # a line that ends with a comma goes on in the next: the 0.5B read RAG's last line of
    # authors as all of them
    text = re.sub(r",[ \t]*\n\s*", ", ", _EMAIL.sub("", _listed_by_orcid(text, where_they_work)))
    out: list[str] = []  # paragraphs
    lines: list[str] = []  # the lines of the paragraph being written
    names: list[str] = []  # the authors of the list being gathered
    own: dict[str, list[str]] = {}  # an affiliation given beside one author -> those authors
    shared: list[str] = []  # affiliations given for several of them at once

    def end_paragraph() -> None:
        if lines:
            out.append("\n".join(lines))
        lines.clear()

    # Each author's own affiliation beside their name ("Ashish Vaswani (Google Brain), Noam
    # Shazeer (Google Brain), …") had the 0.5B answer "Who wrote the Attention paper?" with the
    # first name alone; with the names first and the affiliations after, all eight, and 4 of
    # 6 questions for who works where (6 of 6 before; work/scratch of session 28).
    def end_list() -> None:
        if names:
            groups = "; ".join(f"{', '.join(people)} ({where})" for where, people in own.items())
            out.extend([", ".join(names), *[line for line in (groups, "; ".join(shared)) if line]])
        names.clear()
        own.clear()
        shared.clear()

    for paragraph in re.split(r"\n\s*\n", text):
        for line in paragraph.split("\n"):
            authors = _authors(line) if line.strip() != title.strip() else None
            # A lone line of two capitalised words ("Luke Zettlemoyer", or a title such as
            # "Deep Learning") is a name only where it carries on a list of names before it.
            if authors and (names or authors[3]):
                end_paragraph()
                names.extend(authors[0])
                for name, where in authors[1]:
                    own.setdefault(where, []).append(name)
                shared.extend(authors[2])
                continue
            end_list()
            cleaned = _LEADING_NUMBER.sub("", _FOOTNOTE_MARK.sub("", line))
            if cleaned := re.sub(r" +(?=,)", "", " ".join(cleaned.split())):
                lines.append(cleaned)
        end_paragraph()
    end_list()
    return "\n\n".join(out)


# An affiliation's number after a name or its footnote mark, or before an affiliation: "Minrui
# Luo∗1,2, Fuhang Kuang∗1" (the 0.5B gave the names with them), "2Shanghai Qi Zhi Institute".
_LEADING_NUMBER = re.compile(r"^\d{1,2}(?=[A-Z][a-z])")
_AFFILIATION_NUMBER = re.compile(r"(?<=[^\W\d_]|[∗†‡§¶*])\d{1,2}(?:,\d{1,2})*(?=,|\s|$)|"
                                 + _LEADING_NUMBER.pattern)


# Where a paper's list of names gives way to an affiliation ("… Kristina Toutanova Google AI
# Language", "Aidan N. Gomez University of Toronto"). A name list glued to no such word, or
# one of these read as a surname, is left as it was.
_AFFILIATION_WORDS = frozenset(
    "University Universität Université Universidad Università Universiteit Univ. Institute "
    "Institut Instituto College School Department Dept. Département Faculty Laboratory "
    "Laboratories Lab Labs Center Centre Academy Corporation Corp. Inc. Ltd. LLC GmbH Hospital "
    "Google Microsoft Facebook Meta OpenAI DeepMind Amazon IBM Apple NVIDIA Baidu Alibaba "
    "Tencent Huawei Salesforce Intel Adobe Samsung Inria CNRS".split())
_INITIAL = re.compile(r"[A-Z]\.(?:-[A-Z]\.)?")


def _is_name_word(word: str) -> bool:
    """A capitalised word of letters, hyphens and apostrophes: "Ming-Wei", "Łukasz", "O'Neil"."""
    parts = re.split(r"[-'’]", word)
    return (word[:1].isupper() and all(part.isalpha() for part in parts)
            and not word[1:].isupper() and len(word) > 1)


def _people(words: list[str], delimited: bool) -> list[str] | None:
    """Names that follow each other without a separator, split two words at a time (an initial
    goes with its name: "Aidan N. Gomez"); one name of two or three words where a comma or a
    footnote mark has already set it apart. None where that does not divide evenly."""
    if not words or not all(_is_name_word(w) or _INITIAL.fullmatch(w) for w in words):
        return None
    full = [w for w in words if not _INITIAL.fullmatch(w)]
    if 2 <= len(full) <= 3 and (delimited or len(full) == 2):
        return [" ".join(words)]
    if len(full) < 4 or len(full) % 2:
        return None
    people, current = [], []
    for word in words:
        current.append(word)
        if sum(not _INITIAL.fullmatch(w) for w in current) == 2:
            people.append(" ".join(current))
            current = []
    return people


def _authors(line: str) -> tuple[list[str], list[tuple[str, str]], list[str], bool] | None:
    """A line that lists authors, as (names; (name, affiliation) where one stands alone beside
    a name; affiliations shared by several; whether anything set the names apart): None for any
    other line, which is left as it is."""
    line = _AFFILIATION_NUMBER.sub("", line)
    pieces = [p.strip() for p in re.split(r"[,;]|" + _FOOTNOTE_MARK.pattern, line)]
    pieces = [p for p in pieces if p]
    delimited = len(pieces) > 1
    names: list[str] = []
    own: list[tuple[str, str]] = []
    shared: list[str] = []
    last_single = False  # the piece before named one person, who takes the next affiliation
    for piece in pieces:
        words = piece.split()
        at = next((i for i, w in enumerate(words) if w.strip("()") in _AFFILIATION_WORDS),
                  len(words))
        if at == len(words) - 1:  # "New York University", not "New York" of a university
            at = 0
        people = _people(words[:at], delimited or at < len(words)) if at else []
        if people is None:
            return None
        affiliation = " ".join(words[at:])
        names += people
        if affiliation:
            if len(people) == 1 or (not people and last_single and names):
                own.append((names[-1], affiliation))
            else:
                shared.append(affiliation)
        last_single = len(people) == 1 and not affiliation
    return (names, own, shared, delimited or len(names) > 1 or bool(shared)) if names else None

# "Who wrote X?" got the first author alone for 3 of 9 papers and questions ("Who wrote QLoRA?"
# -> "Tim Dettmers [1]", of four) where "Who are the authors of X?" got every author for all 9,
# over the same passages (`ask` over the shared papers, session 28): the model reads it so.
_WHO_WROTE = re.compile(r"^\s*who (?:wrote|authored) (?P<what>[^?,]+)\?\s*$", re.IGNORECASE)


_PRONOUNS = frozenset("it this that these those them".split())


def as_the_model_reads_it(question: str, one_document: bool = False) -> str:
    """The question as the prompt puts it: "Who wrote X?" as "Who are the authors of X?"; "Who
    wrote it?" so only where the passages are all of `one_document`."""
    asked = _WHO_WROTE.match(question)
    what = asked.group("what").strip() if asked else ""
    # "Who are the authors of it?" over papers with nothing said before: the 0.5B listed two
    # papers' authors as one list, where "Who wrote it?" named one paper's. Over the sample
    # paper alone, "Who wrote it?" got the first of its twenty authors, and "Who are the
    # authors of it?" all twenty.
    if not what or (what.lower() in _PRONOUNS and not one_document):
        return question
    return f"Who are the authors of {what}?"


def asks_about_document(question: str) -> bool:
    return (bool(_ABOUT_DOCUMENT.search(question) or _WHERE_PERSON_WORKS.search(question))
            or asks_for_parties(question) or overview.asks_what_it_is_about(question))


def asks_where_authors_work(question: str) -> bool:
    return bool(_WHERE_PERSON_WORKS.search(question) or _WHERE_AUTHORS_WORK.search(question))


def asks_for_parties(question: str) -> bool:
    return bool(_PARTIES.search(question))


def opening_chunks(index: Bm25Index, question: str, ranked_docs: list[str],
                   doc_ids: tuple[str, ...], limit: int, retrieval_answers: bool = True
                   ) -> list[int]:
    """Positions in `index` of the opening chunks of the documents the question is about: those
    whose title or file name shares most of the words it capitalises ("the BERT paper"), above
    all those that introduce the name (core.rag.naming: "the Transformer paper"), else
    those the retrieved chunks came from (`ranked_docs`, best first), at most `limit`
    documents. A question for the parties gets each one's closing chunk too, after its
    opening. None where the question names something that no document is called and
    `retrieval_answers` is False (the retrieved chunks are too weak a match to answer it):
    asked "Who are the authors of QLoRA?" over the two Square One forms, the 0.5B read their
    openings and answered "Alibaba Cloud [1]"."""
    openings = naming.opening_positions(index, doc_ids)
    last: dict[str, tuple[int, int]] = {}  # doc id -> (its last chunk, that chunk's position)
    for i, m in enumerate(index.metas if asks_for_parties(question) else []):
        if m["doc_id"] in openings:
            last[m["doc_id"]] = max(last.get(m["doc_id"], (0, 0)), (int(m["chunk"]), i))
    closings = {doc: i for doc, (chunk, i) in last.items() if chunk > 0}
    introduced = naming.introductions(index, question, set(openings))
    introducing = {doc: at for doc, (_, at) in introduced.items() if at is not None}
    docs, named = naming.asked_documents(index, question, ranked_docs, openings, introduced)
    if not named and naming.capitalised(question) and not retrieval_answers:
        return []
    # The chunk that introduces the name goes with the opening: "Who wrote the Transformer
    # paper?" over Attention's title block alone ("Attention Is All You Need", its authors) got
    # "I don't know."
    return [i for doc in docs[:limit]
            for i in (openings[doc], *(j for j in (introducing.get(doc), closings.get(doc))
                                       if j not in (None, openings[doc])))]

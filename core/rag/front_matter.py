"""Questions about a document itself (who wrote it, what it is called, where its authors work,
who its parties are), which its opening chunk answers (the title block of a paper, the heading
of a letter, an agreement's preamble) and no retriever finds: the question shares no word with a
list of names ("wrote", "paper"), and MiniLM puts "Who wrote the BERT paper?" at cosine 0.32 to
BERT's title block, 40th of its 153 chunks, so the 0.5B model read three passages about
pre-training and answered "OpenAI"."""

from __future__ import annotations

import re
import weakref

from core.rag.bm25 import Bm25Index
from core.rag.terms import question_terms

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
PERSON_WORDS = 2  # a full name: an opening that holds as many of the question's names has them
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
# What a document is about, which its abstract says (else the opening of its first section):
# "What is this paper about?" shares no word with any passage, and over the sample paper
# retrieval led with reference 93, on dropout; the 0.5B answered that the paper is about dropout.
_KIND = r"(?:paper|document|article|report|study|book|file|text|manuscript)"
_DOCUMENT = rf"(?:this|the|that)\s+(?:[\w.:-]+\s+){{0,4}}?{_KIND}"  # "the BERT paper"
_WHAT_ABOUT = re.compile(
    rf"\bwhat(?:'s|’s|\s+is|\s+was)\s+(?:{_DOCUMENT}|it|(?:(?-i:[A-Z])[\w.-]*\s+){{1,3}}?)\s*"
    rf"(?:all\s+)?about\b|\b(?:summari[sz]e|sum up|give (?:me )?(?:an? )?(?:overview|summary)"
    rf" of)\s+{_DOCUMENT}\b", re.IGNORECASE)
OVERVIEW = "overview"  # Hit.retriever of a passage placed for what its document is about
_OVERVIEW_SECTIONS = frozenset({"abstract", "summary", "executive summary", "overview"})
OVERVIEW_CHARS = 200  # a shorter chunk of a section's end is a sentence run on past a page
# A title is named with capitals ("the BERT paper", "QLoRA"); the question's other words ("Where
# do the authors of QLoRA work?") would pick "Square One Statement of Work" as well.
_NAME = re.compile(r"(?<!^)\b\w*[A-Z]\w*")
# A name that a document introduces: its title's lead before a colon ("BERT: Pre-training of …")
# or one its opening presents ("a new language representation model called BERT", "We propose
# a new simple network architecture, the Transformer, based …"). "The Transformer paper" is the
# paper that introduced it, not BERT's, whose title merely says "… Bidirectional Transformers".
# Names are compared whole: "SC-LoRA" is not "LoRA".
_INTRODUCES = re.compile(r"\b(?:called|named|dubbed|termed)\s+(?:the\s+)?([A-Z][\w-]*)"
                         r"|\b(?:propose|introduce|present)s?\b[^.]*?,\s+the\s+([A-Z][\w-]*),")
_WHOLE_NAME = re.compile(r"(?<![\w-])[\w-]*[A-Z][\w-]*")
INTRODUCED_WEIGHT = 2  # an introduced name outweighs a word of another document's title
INTRODUCTION = "introduction"  # Hit.retriever of the sentence that introduces the name asked
HEAD_CHUNKS = 3  # where an introduction is looked for: a paper's title block is often chunk 0


# A title block's footnote marks ("Pouget-Abadie∗", "Hu*") and e-mail addresses: given "Jean
# Pouget-Abadie∗, Mehdi Mirza, …" the 0.5B wrote "Pouget-Abadie*" and ended its answer there, two
# names of GAN's eight; without them it wrote all eight, and QLoRA's four instead of three.
_FOOTNOTE_MARK = re.compile(r"[∗†‡§¶]+|(?<=[^\W\d_])\*+"
                            # "?" where extraction lost a symbol font's star: "Perez?,", "; ?New"
                            r"|(?<=[^\W\d_])\?(?=,)|(?<=[\s;,])\?(?=[A-Z])")
# with the angle brackets around one ("Herbert Rudolf <hr@superco.com>" read "Herbert Rudolf <>")
_EMAIL = re.compile(r"\{[^{}]*\}@[\w.-]+|\s*<[\w.+-]+@[\w-]+(?:\.[\w-]+)+>|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def readable(text: str, title: str = "") -> str:
    """A title block as the model reads it: the authors as a list with commas, then their
    affiliations (grouped by affiliation where the block gives one per author), without
    footnote marks, affiliation numbers and e-mail addresses (the Retrieved-chunks panel still
    shows the text as it is).
    Lines that are not lists of names (the document's `title`, an address, the abstract) keep
    their words: read as names, "Square One Offer Letter" became "Square One, Offer Letter"."""
    # a line that ends with a comma goes on in the next: the 0.5B read RAG's last line of
    # authors as all of them
    text = re.sub(r",[ \t]*\n\s*", ", ", _EMAIL.sub("", text))
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


def _whole_names(text: str, question: bool = True) -> set[str]:
    """The capitalised words of `text`, whole and in lower case; of a question, not its first."""
    return {m.group().lower() for m in _WHOLE_NAME.finditer(text.strip())
            if m.start() or not question}


def _introduced(text: str) -> set[str]:
    return {name.lower() for m in _INTRODUCES.finditer(text) for name in m.groups() if name}


def _introductions(index: Bm25Index, question: str, docs: set[str]
                   ) -> dict[str, tuple[int, int | None]]:
    """doc id -> (how many of the names the question capitalises the document introduces, the
    position of the first chunk that introduces one its title does not, else None), for the
    documents of `docs` that introduce any (in their first HEAD_CHUNKS chunks)."""
    names = _whole_names(question)
    found: dict[str, tuple[set[str], int | None]] = {}
    heads = sorted((int(m["chunk"]), i) for i, m in enumerate(index.metas if names else ())
                   if m["doc_id"] in docs and int(m["chunk"]) < HEAD_CHUNKS)
    for chunk, i in heads:
        doc, title = index.metas[i]["doc_id"], index.metas[i].get("title", "")
        said, first = found.get(doc, (set(), None))
        if chunk == 0 and ":" in title:  # "BERT: Pre-training of …"
            said = said | (names & _whole_names(title.split(":", 1)[0], question=False))
        here = names & _introduced(index.texts[i])
        found[doc] = (said | here, i if first is None and here - said else first)
    return {doc: (len(said), first) for doc, (said, first) in found.items() if said}


# known_as per keyword index: every search reads it, and it changes only with the index
_known_as: weakref.WeakKeyDictionary[Bm25Index, dict[str, str]] = weakref.WeakKeyDictionary()


def known_as(index: Bm25Index) -> dict[str, str]:
    """doc id -> the names the document introduces that its title does not hold ("Transformer"
    for "Attention Is All You Need"), for those that introduce any: every chunk's context, as
    the title is."""
    if (cached := _known_as.get(index)) is not None:
        return cached
    found: dict[str, set[str]] = {}
    for i, m in enumerate(index.metas):
        if int(m["chunk"]) < HEAD_CHUNKS:
            found.setdefault(m["doc_id"], set()).update(
                _introduced(index.texts[i]) - _whole_names(m.get("title", ""), question=False))
    _known_as[index] = {doc: " ".join(sorted(names)) for doc, names in found.items() if names}
    return _known_as[index]


def _full_name(names: set[str], opening: str) -> int:
    """How many of the question's capitalised words (`names`, as stems) `opening` holds, where
    they are at least a full name (PERSON_WORDS), else 0."""
    held = len(names & question_terms(opening))
    return held if held >= PERSON_WORDS else 0


def introduction(text: str, question: str) -> tuple[int, int] | None:
    """The span in `text` of its first sentence that introduces a name the question uses: of
    the abstract that holds it, that sentence alone. Given Attention's whole first chunk of
    abstract after its title block, the 0.5B answered "Who wrote the Transformer paper?" with
    "I don't know."; given the sentence alone, with the eight authors."""
    names = _whole_names(question)
    for m in _INTRODUCES.finditer(text):
        if names & {name.lower() for name in m.groups() if name}:
            before = text[:m.start()]
            start = max(before.rfind(". ") + 2 if ". " in before else 0, before.rfind("\n") + 1)
            end = text.find(". ", m.end())
            return start, len(text) if end < 0 else end + 1
    return None


# "Who wrote X?" got the first author alone for 3 of 9 papers and questions ("Who wrote QLoRA?"
# -> "Tim Dettmers [1]", of four) where "Who are the authors of X?" got every author for all 9,
# over the same passages (`ask` over the shared papers, session 28): the model reads it so.
_WHO_WROTE = re.compile(r"^\s*who (?:wrote|authored) (?P<what>[^?,]+)\?\s*$", re.IGNORECASE)


_PRONOUNS = frozenset("it this that these those them".split())


def as_the_model_reads_it(question: str) -> str:
    """The question as the prompt puts it: "Who wrote X?" as "Who are the authors of X?", and
    "What is X about?" as "Summarize the paper in one sentence." (given BERT's abstract, the
    0.5B answered the first with "The BERT paper about is Pre-training of Deep …"; the second
    with what BERT is and does, and as well for the four other papers asked)."""
    if asks_what_it_is_about(question):
        kind = re.search(_KIND, question, re.IGNORECASE)
        return f"Summarize the {kind[0].lower() if kind else 'document'} in one sentence."
    asked = _WHO_WROTE.match(question)
    what = asked.group("what").strip() if asked else ""
    # "Who are the authors of it?" over papers with nothing said before: the 0.5B listed two
    # papers' authors as one list, where "Who wrote it?" named one paper's
    return f"Who are the authors of {what}?" if what and what.lower() not in _PRONOUNS else question


def asks_about_document(question: str) -> bool:
    return (bool(_ABOUT_DOCUMENT.search(question) or _WHERE_PERSON_WORKS.search(question))
            or asks_for_parties(question) or asks_what_it_is_about(question))


def asks_what_it_is_about(question: str) -> bool:
    return bool(_WHAT_ABOUT.search(question))


def asks_for_parties(question: str) -> bool:
    return bool(_PARTIES.search(question))


def named_documents(index: Bm25Index, question: str, doc_ids: tuple[str, ...] = ()
                    ) -> list[str]:
    """The documents (of `doc_ids`, else all) that the question names most strongly, as
    `opening_chunks` reads a name ("the Transformer", "QLoRA", "Aidan N. Gomez"); none where
    it names none, or every one."""
    openings = _opening_positions(index, doc_ids)
    shared = _naming(index, question, openings,
                     _introductions(index, question, set(openings)))
    most = max(shared.values(), default=0)
    named = [doc for doc, n in shared.items() if n == most] if most else []
    return named if len(named) < len(openings) else []


def capitalised(question: str) -> set[str]:
    """The words the question capitalises (not its first), as stems: how it names a document."""
    return question_terms(" ".join(_NAME.findall(question.strip())))


def _opening_positions(index: Bm25Index, doc_ids: tuple[str, ...]) -> dict[str, int]:
    """doc id -> the position in `index` of its opening chunk, for `doc_ids` (else all)."""
    return {m["doc_id"]: i for i, m in enumerate(index.metas)
            if int(m["chunk"]) == 0 and (not doc_ids or m["doc_id"] in doc_ids)}


def _naming(index: Bm25Index, question: str, openings: dict[str, int],
            introduced: dict[str, tuple[int, int | None]]) -> dict[str, int]:
    """doc id -> how strongly the question names the document: each word it capitalises that
    the title or file name holds ("the GAN paper" is 1406.2661_GAN.pdf), each word of a phrase
    it shares with the file name (`_phrase`), INTRODUCED_WEIGHT for each name the document
    introduces (`_introductions`), and a person's full name in its opening (an author: "Aidan
    N. Gomez")."""
    names = capitalised(question)
    words = [question_terms(word) for word in re.findall(r"[\w-]+", question)]
    called = _called(index)
    return {doc: len(names & called[doc][0]) + len(_phrase(words, called[doc][1]) - names)
            + INTRODUCED_WEIGHT * introduced.get(doc, (0, None))[0] + _full_name(names, index.texts[i])
            for doc, i in openings.items()}


# _called per keyword index: every search reads it for every document
_called_by: weakref.WeakKeyDictionary[Bm25Index, dict[str, tuple[set[str], set[str]]]] = (
    weakref.WeakKeyDictionary())


def _called(index: Bm25Index) -> dict[str, tuple[set[str], set[str]]]:
    """doc id -> the stems of its title and file name, and of its file name alone."""
    if (cached := _called_by.get(index)) is not None:
        return cached
    called: dict[str, tuple[set[str], set[str]]] = {}
    for m in index.metas:
        if m["doc_id"] not in called:
            file = question_terms(m["file"].rsplit(".", 1)[0].replace("_", " ").replace("-", " "))
            called[m["doc_id"]] = (question_terms(m.get("title", "")) | file, file)
    _called_by[index] = called
    return called


def _phrase(words: list[set[str]], called: set[str]) -> set[str]:
    """Of the question's words (each as its stems, empty for a stop word), those in runs of two
    words or more (stop words between them aside) that a file name holds (`called`): "the offer
    letter", "the statement of work" name square-one_offer-letter.docx and
    square-one_statement-of-work.docx in lower case, where `capitalised` reads no name, and the
    parties question was answered from every document's opening. A file name, not a title: a
    paper's title holds phrases any question may use ("large language models")."""
    found: set[str] = set()
    run: list[set[str]] = []
    for stems in [*words, None]:
        if stems is not None and not stems:  # a stop word does not break the run
            continue
        if stems and stems <= called:
            run.append(stems)
            continue
        if len(run) >= 2:
            found.update(*run)
        run = []
    return found


def overview_chunks(index: Bm25Index, question: str, ranked_docs: list[str],
                    doc_ids: tuple[str, ...], limit: int) -> list[int]:
    """Positions in `index` of at most `limit` passages that say what the document asked about
    is about (the one the question names, else the one retrieval ranked first, as
    `opening_chunks` chooses): its abstract, else the opening and the end of its first section
    after its front matter, else its opening; then those of the next document."""
    openings = _opening_positions(index, doc_ids)
    chunks: dict[str, list[tuple[int, str, int]]] = {}  # doc id -> (chunk, section, position)
    for i, m in enumerate(index.metas):
        if m["doc_id"] in openings:
            chunks.setdefault(m["doc_id"], []).append((int(m["chunk"]), m.get("section", ""), i))
    found: list[int] = []
    docs, _ = _asked_documents(index, question, ranked_docs, openings,
                               _introductions(index, question, set(openings)))
    for doc in docs:
        ordered = sorted(chunks[doc])
        abstract = next((sec for _, sec, _ in ordered if sec.lower() in _OVERVIEW_SECTIONS), None)
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
        ends = [i for i in body[1:] if len(index.texts[i]) >= OVERVIEW_CHARS][-(limit - 1):]
        found += [*body[:1], *ends] if body else [openings[doc]]
    return found[:limit]


def _asked_documents(index: Bm25Index, question: str, ranked_docs: list[str],
                     openings: dict[str, int], introduced: dict[str, tuple[int, int | None]]
                     ) -> tuple[list[str], bool]:
    """The documents (of `openings`) a question about a document is about, most likely first:
    those it names most strongly (`_naming`), then those retrieval ranked (`ranked_docs`, best
    first); and whether it names any."""
    shared = _naming(index, question, openings, introduced)
    most = max(shared.values(), default=0)
    if most:
        named = {doc for doc, n in shared.items() if n == most}
        ranked_docs = [d for d in ranked_docs if d in named] + sorted(named - set(ranked_docs))
    return list(dict.fromkeys(d for d in ranked_docs if d in openings)), bool(most)


def opening_chunks(index: Bm25Index, question: str, ranked_docs: list[str],
                   doc_ids: tuple[str, ...], limit: int, retrieval_answers: bool = True
                   ) -> list[int]:
    """Positions in `index` of the opening chunks of the documents the question is about: those
    whose title or file name shares most of the words it capitalises ("the BERT paper"), above
    all those that introduce the name (`_introduced`: "the Transformer paper"), else
    those the retrieved chunks came from (`ranked_docs`, best first), at most `limit`
    documents. A question for the parties gets each one's closing chunk too, after its
    opening. None where the question names something that no document is called and
    `retrieval_answers` is False (the retrieved chunks are too weak a match to answer it):
    asked "Who are the authors of QLoRA?" over the two Square One forms, the 0.5B read their
    openings and answered "Alibaba Cloud [1]"."""
    openings = _opening_positions(index, doc_ids)
    last: dict[str, tuple[int, int]] = {}  # doc id -> (its last chunk, that chunk's position)
    for i, m in enumerate(index.metas if asks_for_parties(question) else []):
        if m["doc_id"] in openings:
            last[m["doc_id"]] = max(last.get(m["doc_id"], (0, 0)), (int(m["chunk"]), i))
    closings = {doc: i for doc, (chunk, i) in last.items() if chunk > 0}
    introduced = _introductions(index, question, set(openings))
    introducing = {doc: at for doc, (_, at) in introduced.items() if at is not None}
    docs, named = _asked_documents(index, question, ranked_docs, openings, introduced)
    if not named and capitalised(question) and not retrieval_answers:
        return []
    # The chunk that introduces the name goes with the opening: "Who wrote the Transformer
    # paper?" over Attention's title block alone ("Attention Is All You Need", its authors) got
    # "I don't know."
    return [i for doc in docs[:limit]
            for i in (openings[doc], *(j for j in (introducing.get(doc), closings.get(doc))
                                       if j not in (None, openings[doc])))]

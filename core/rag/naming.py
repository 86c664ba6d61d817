"""Which documents a question names, and the names documents introduce: "the BERT paper" is
the one titled "BERT: …", "the Transformer paper" the one whose abstract says "We propose a new
simple network architecture, the Transformer, …", "the offer letter" the file
square-one_offer-letter.docx, and "Aidan N. Gomez" the paper whose title block names him.
Questions about a document itself (core.rag.front_matter, core.rag.overview) read the opening of
the one named; every search prefers the named documents (core.rag.retrieval)."""

from __future__ import annotations

import re
import weakref

from core.rag import acronyms
from core.rag.bm25 import Bm25Index
from core.rag.terms import question_terms

PERSON_WORDS = 2  # a full name: an opening that holds as many of the question's names has them
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
RETRIEVER = "introduction"  # Hit.retriever of the sentence that introduces the name asked
HEAD_CHUNKS = 3  # where an introduction is looked for: a paper's title block is often chunk 0
# A document opens where its title stands: OCR read the LoRA paper's arXiv margin ("arXiv:
# 2106.09685v2 [cs.CL] 16 Oct 2021") as chunk 0, before the title block, and "Who are the
# authors of the LoRA paper?" was given that line alone. Its start only: a long title breaks
# across lines.
TITLE_START = 30


# An ORCID iD after a name. A Manubot title block (the shipped sample paper) marks each of its
# twenty authors so, with their GitHub and Twitter handles, and puts their affiliations and
# funding in the paragraph below ("Benjamin D. Lee 0000-0002-7133-8397 · Benjamin-Lee"; its
# web page has the iD on the line after the name), over twelve chunks.
ORCID = re.compile(r"\b\d{4}-\d{4}-\d{4}-\d{3}[\dX]\b")
AUTHOR_LIST_CHUNKS = 24  # how far after a document's opening its ORCID-marked authors are followed


def rest_of_author_list(opening: dict, rows: list[dict]) -> list[dict]:
    """Of `rows` (chunks, in order), those after `opening` that its list of ORCID-marked authors
    goes on in: up to the last one holding an iD, and the one after it (the last author's
    affiliations); two in a row without an iD end it. Given the sample paper's opening alone,
    "Who are the authors?" got the first of its twenty."""
    if not ORCID.search(opening["text"]):
        return []
    kept: list[dict] = []
    last = -1  # where in `kept` the last chunk holding an iD is (-1: the opening)
    for row in rows:
        if row["doc_id"] != opening["doc_id"] or row["chunk"] <= opening["chunk"]:
            continue
        if row["chunk"] != opening["chunk"] + len(kept) + 1 or len(kept) - last > 2:
            break
        kept.append(row)
        if ORCID.search(row["text"]):
            last = len(kept) - 1
    return kept[:last + 2]


def _whole_names(text: str, question: bool = True) -> set[str]:
    """The capitalised words of `text`, whole and in lower case; of a question, not its first."""
    return {m.group().lower() for m in _WHOLE_NAME.finditer(text.strip())
            if m.start() or not question}


def _introduced(text: str) -> set[str]:
    return {name.lower() for m in _INTRODUCES.finditer(text) for name in m.groups() if name}


def introductions(index: Bm25Index, question: str, docs: set[str]
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

def named_documents(index: Bm25Index, question: str, doc_ids: tuple[str, ...] = ()
                    ) -> list[str]:
    """The documents (of `doc_ids`, else all) that the question names most strongly, as
    core.rag.front_matter reads a name ("the Transformer", "QLoRA", "Aidan N. Gomez"); none where
    it names none, or every one."""
    openings = opening_positions(index, doc_ids)
    shared = _naming(index, question, openings,
                     introductions(index, question, set(openings)))
    most = max(shared.values(), default=0)
    named = [doc for doc, n in shared.items() if n == most] if most else []
    return named if len(named) < len(openings) else []


def _spelled(index: Bm25Index, question: str) -> set[str]:
    """The question's acronyms that no title holds as a word (as core.rag.acronyms.expand
    reads them): "LLM" of "LLMs" is QLoRA's title's word, not what LoRA's "… Large Language
    Models" spells."""
    return acronyms.acronyms(question) - {a for title in index.titles for a in acronyms.acronyms(title)}


def _spells(index: Bm25Index, doc: str, acronym: str) -> bool:
    return acronyms.spelled_by(acronym, index.metas[_openings(index)[doc]].get("title", "")) is not None


def capitalised(question: str) -> set[str]:
    """The words the question capitalises (not its first), as stems: how it names a document."""
    return question_terms(" ".join(_NAME.findall(question.strip())))


def opening_positions(index: Bm25Index, doc_ids: tuple[str, ...]) -> dict[str, int]:
    """doc id -> the position in `index` of its opening chunk, for `doc_ids` (else all): the
    first of its first HEAD_CHUNKS that holds the start of its title, else its first."""
    return {doc: i for doc, i in _openings(index).items() if not doc_ids or doc in doc_ids}


# _openings per keyword index: every search reads it, and it changes only with the index
_openings_by: weakref.WeakKeyDictionary[Bm25Index, dict[str, int]] = weakref.WeakKeyDictionary()


def _openings(index: Bm25Index) -> dict[str, int]:
    if (cached := _openings_by.get(index)) is not None:
        return cached
    heads: dict[str, list[tuple[int, int]]] = {}  # doc id -> (chunk, position)
    for i, m in enumerate(index.metas):
        if int(m["chunk"]) < HEAD_CHUNKS:
            heads.setdefault(m["doc_id"], []).append((int(m["chunk"]), i))
    _openings_by[index] = {doc: next((i for _, i in sorted(found) if _holds_title(index, i)),
                                     min(found)[1]) for doc, found in heads.items()}
    return _openings_by[index]


def _holds_title(index: Bm25Index, position: int) -> bool:
    title = " ".join(index.metas[position].get("title", "").split()).lower()[:TITLE_START]
    return bool(title) and title in " ".join(index.texts[position].split()).lower()


def _naming(index: Bm25Index, question: str, openings: dict[str, int],
            introduced: dict[str, tuple[int, int | None]]) -> dict[str, int]:
    """doc id -> how strongly the question names the document: each word it capitalises that
    the title or file name holds ("the GAN paper" is 1406.2661_GAN.pdf), each acronym of it
    that the title spells ("RAG": "Retrieval-Augmented Generation for …"), each word of a phrase
    it shares with the file name (`_phrase`), INTRODUCED_WEIGHT for each name the document
    introduces (`introductions`), and a person's full name in its opening (an author: "Aidan
    N. Gomez"), with the rest of its list of authors."""
    names = capitalised(question)
    words = [question_terms(word) for word in re.findall(r"[\w-]+", question)]
    called = _called(index)
    spelled = _spelled(index, question)
    return {doc: len(names & called[doc][0]) + len(_phrase(words, called[doc][1]) - names)
            + sum(1 for a in spelled if _spells(index, doc, a))
            + INTRODUCED_WEIGHT * introduced.get(doc, (0, None))[0]
            + _full_name(names, _title_block(index, i))
            for doc, i in openings.items()}


def _title_block(index: Bm25Index, opening: int) -> str:
    """The text of the opening chunk at `opening` in `index`, and of the chunks its list of
    authors goes on in (rest_of_author_list)."""
    meta = index.metas[opening]
    if not ORCID.search(index.texts[opening]):
        return index.texts[opening]
    last = int(meta["chunk"]) + AUTHOR_LIST_CHUNKS
    rows = sorted(({**m, "chunk": int(m["chunk"]), "text": index.texts[i]}
                   for i, m in enumerate(index.metas)
                   if m["doc_id"] == meta["doc_id"] and int(meta["chunk"]) < int(m["chunk"]) <= last),
                  key=lambda row: row["chunk"])
    opening_row = {"doc_id": meta["doc_id"], "chunk": int(meta["chunk"]), "text": index.texts[opening]}
    return "\n".join([index.texts[opening], *(r["text"] for r in rest_of_author_list(opening_row, rows))])


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

def asked_documents(index: Bm25Index, question: str, ranked_docs: list[str],
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

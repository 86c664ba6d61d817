"""Questions that ask what an abbreviation is ("What is NF4?", "What does MLM stand for?") and
the chunk where a document spells it out ("4-bit NormalFloat (NF4), a new data type that …").

Neither retriever finds that chunk: the question is one word long, every chunk of the paper
uses the word, and MiniLM rates a table that mentions NF4 closer (QLoRA's abstract, which
defines it, was not among the top 8). Given those passages the 0.5B wrote back "NF4"."""

from __future__ import annotations

import re
import weakref

from core.rag.bm25 import Bm25Index

RETRIEVER = "definition"  # how a hit placed first here says where it came from (Hit.retriever)
_ABBREVIATION = re.compile(r"(?=\w*[A-Z]\w*[A-Z0-9])[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]")
_ASKS = re.compile(
    r"^\s*(?:what(?:'s|’s|\s+is|\s+are|\s+does|\s+do|\s+is\s+meant\s+by)|define)\s+"
    r"(?:an?\s+|the\s+)?(?P<term>[^?.!]{1,60}?)"
    r"(?:\s+(?:stands?|standing)\s+for|\s+mean)?\s*[?.!]?\s*$", re.IGNORECASE)
# The abbreviation alone may be followed by where it is used ("What is NF4 in QLoRA?")
_WHERE = re.compile(r"(?P<abbreviation>\S+)\s+(?:in|of|from)\s+(?:the\s+)?[A-Z][\w-]*(?:\s+paper)?")
# After the abbreviation, a term may name what kind of thing it is ("the NF4 data type")
_KIND_WORDS = 2
_CANDIDATES = 50  # chunks that use the abbreviation, read for a definition
_IN_BRACKETS = re.compile(r"\((?P<abbreviation>(?=\w*[A-Z]\w*[A-Z0-9])[A-Za-z][A-Za-z0-9-]*?)s?\)")
_CLAUSE_END = re.compile(r"[.;:,()\[\]]\s")
_PHRASE = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:\s+[A-Za-z][A-Za-z'’-]*)+")


def asked_abbreviation(question: str) -> str | None:
    """The abbreviation a question asks the meaning of, a plural's "s" left off: "NF4" for
    "What is NF4?", "What is the NF4 data type?" and "What is NF4 in QLoRA?"; None for other
    questions ("What is LoRA's rank?", "What is the rank of LoRA?") and for a term without one
    ("What is attention?"), which retrieval finds by its words."""
    asked = _ASKS.match(question)
    term = asked["term"] if asked else ""
    where = _WHERE.fullmatch(term)
    words = [where["abbreviation"]] if where else term.split()
    if not words or len(words) > 1 + _KIND_WORDS or not _ABBREVIATION.fullmatch(words[0]) \
            or any(not w.islower() for w in words[1:]):
        return None
    word = words[0]
    return word[:-1] if word.endswith("s") and word[:-1].isupper() else word


def spells(abbreviation: str, words: str) -> bool:
    """Whether `words`, read backwards, hold the abbreviation's letters in order, the first at
    the start of a word (Schwartz & Hearst, 2003): "Low-Rank Adaptation" spells LoRA and
    "4-bit NormalFloat" NF4; "RoBlarge" does not spell LoRA (a table row's "RoBlarge (LoRA)")."""
    letters = [c for c in abbreviation.lower() if c.isalpha()]
    text = words.lower()
    at = len(text)
    for n in range(len(letters) - 1, -1, -1):
        at -= 1
        while at >= 0 and not (text[at] == letters[n]
                               and (n or at == 0 or not text[at - 1].isalnum())):
            at -= 1
        if at < 0:
            return False
    return bool(letters)


def defines(text: str, abbreviation: str) -> bool:
    """Whether `text` spells the abbreviation out, in at most its length plus five words, in
    one of the forms papers use: "4-bit NormalFloat (NF4)" or "Low-Rank Adaptation, or LoRA",
    the words before it in the same clause; "NF4 (4-bit NormalFloat)"; "(Dense Passage
    Retriever [26], henceforth DPR)"."""
    letters = sum(c.isalpha() for c in abbreviation)
    name = re.escape(abbreviation)

    def spelled(words: str) -> bool:
        return spells(abbreviation, " ".join(words.split()[-(letters + 5):]))

    for found in re.finditer(rf"\(\s*{name}s?\s*\)|,\s+or\s+{name}s?\b", text):
        if spelled(re.split(r"[.;:,()\[\]]\s", text[:found.start()])[-1]):
            return True
    after = rf"\b{name}s?\s*\(([^()]{{3,80}})\)"
    within = rf"\(([^()]{{3,80}}?),?\s+(?:henceforth|hereafter|or|i\.e\.,?)\s+{name}s?\)"
    return any(len(found[1].split()) <= letters + 5 and spelled(found[1])
               for pattern in (after, within) for found in re.finditer(pattern, text))


def defining_chunk(index: Bm25Index, abbreviation: str, ranked_docs: list[str],
                   doc_ids: tuple[str, ...] = (), labels: tuple[str, ...] = ()) -> int | None:
    """Position in `index` of the first chunk that defines the abbreviation, in the document
    whose title names it (LoRA's, not QLoRA's, for "What is LoRA?"), else the one retrieval
    ranked highest (`ranked_docs`, best first), else any; None where no chunk defines it."""
    found = [i for i, _ in index.search(abbreviation, _CANDIDATES, doc_ids, labels)
             if defines(index.texts[i], abbreviation)]
    if not found:
        return None

    def order(i: int) -> tuple[bool, int, int]:
        meta = index.metas[i]
        titled = abbreviation.lower() in re.findall(r"\w+", meta.get("title", "").lower())
        doc = meta["doc_id"]
        return (not titled, ranked_docs.index(doc) if doc in ranked_docs else len(ranked_docs),
                int(meta["chunk"]))

    return min(found, key=order)


def defined(text: str) -> dict[str, str]:
    """The abbreviations `text` spells out before them in brackets, each with the fewest words
    of its clause that spell it (`spells`): "Natural Questions (NQ)", "a “masked language
    model” (MLM)". Two words at least, and words only: a table's "RoBlarge (LoRA)" and
    "integer (Int8)" name nothing a question would say in their place."""
    found = {}
    for m in _IN_BRACKETS.finditer(text):
        abbreviation = m["abbreviation"]
        words = _CLAUSE_END.split(text[:m.start()])[-1].split()
        for n in range(1, min(len(words), sum(c.isalpha() for c in abbreviation) + 5) + 1):
            if spells(abbreviation, " ".join(words[-n:])):
                phrase = " ".join(words[-n:]).strip("“”\"'‘’")
                if _PHRASE.fullmatch(phrase):
                    found[abbreviation] = phrase
                break
    return found


# Read once per index, which is loaded once per collection revision; weakly, so that an index
# the keyword cache has let go of (an older revision) is not kept alive here
_abbreviations: weakref.WeakKeyDictionary[Bm25Index, dict[str, str]] = weakref.WeakKeyDictionary()


def abbreviations(index: Bm25Index) -> dict[str, str]:
    """The abbreviations the collection's chunks spell out (`defined`), each with its words;
    one spelled out two ways ("MLM": masked language model, or modelling) left out."""
    if (known := _abbreviations.get(index)) is None:
        known = _abbreviations[index] = _spelled_out(index)
    return known


def _spelled_out(index: Bm25Index) -> dict[str, str]:
    found: dict[str, set[str]] = {}
    for text in index.texts:
        for abbreviation, words in defined(text).items():
            found.setdefault(abbreviation, set()).add(words.lower())
    return {a: words.pop() for a, words in found.items() if len(words) == 1}


def with_definitions(question: str, definitions: dict[str, str], asked: str | None = None) -> str:
    """The question with each phrase it uses that a document abbreviates followed by the
    abbreviation ("… on Natural Questions (NQ)?"), so that search also finds the passages that
    write only that: RAG's Table 1 says "NQ" where "What exact match score does RAG-Sequence
    get on Natural Questions?" does not. Not the other way round: a paper spells a name out
    once and then writes the abbreviation, and "LoRA (low-rank adaptation)" drew search to the
    few passages that spell it out. `asked`: see `spelled_out`."""
    for abbreviation, words in spelled_out(question, definitions, asked).items():
        # one that overlaps a phrase given its abbreviation before it is no longer whole
        if spelled := _phrase(words).search(question):
            question = f"{question[:spelled.end()]} ({abbreviation}){question[spelled.end():]}"
    return question


def spelled_out(question: str, definitions: dict[str, str], asked: str | None = None
                ) -> dict[str, str]:
    """Those of `definitions` (abbreviation -> its words) whose words the question uses and
    whose abbreviation it does not. `asked`: what the user asked, where `question` is a
    follow-up's rewrite; only the phrases they said count, not those the rewrite brought from
    earlier turns ("QLoRA, Double Quantization (DQ), 48GB GPU …" found a table of sizes)."""
    return {abbreviation: words for abbreviation, words in sorted(definitions.items())
            if (phrase := _phrase(words)).search(question)
            and not re.search(rf"\b{re.escape(abbreviation)}s?\b", question)
            and (asked is None or phrase.search(asked))}


def _phrase(words: str) -> re.Pattern:
    joined = r"[\s-]+".join(map(re.escape, words.split()))
    return re.compile(rf"(?<!\w){joined}(?!\w)", re.IGNORECASE)

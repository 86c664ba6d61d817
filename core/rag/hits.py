"""One retrieved chunk, as search returns it, prompts number it and pages draw it."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from core.rag import relevance
from core.rag.relevance import Label

SAME_WORDS = 0.6  # the share of their words two passages that say the same thing share (distinct)
_WORD = re.compile(r"\w+")


def paged(pages: int) -> bool:
    """Whether a page number tells where a passage of a document of `pages` pages is: a text
    file, a .docx or a web page comes out as one long page, and "page 1" on each of its chunks
    told nothing. 0 is not known (a hit saved before pages were counted): its page is shown."""
    return pages != 1


@dataclass
class Hit:
    rank: int
    score: float
    doc: str  # file name
    page: int
    chunk_id: str
    text: str
    # "dense", "bm25", "both", or the RETRIEVER of the module that placed it: "front matter",
    # "introduction", "overview", "part", "definition" (core.rag.front_matter, naming, overview,
    # parts, definitions)
    retriever: str
    doc_id: str = ""
    chunk: int = 0
    start: int = 0  # character span within its page
    end: int = 0
    title: str = ""  # the document's
    # the document's page count (core.rag.bm25.Bm25Index.pages); 0 where not known: a hit saved
    # in a conversation before it was kept
    pages: int = 0
    section: str = ""  # the heading the chunk falls under
    cosine: float = 0.0  # dense similarity to the question, whatever the method
    coverage: float = 0.0  # share of the question's content words found in the chunk
    sentence_cosine: float | None = None  # its best sentence's (rated again: the top ones only)
    best_sentence: tuple[int, int] | None = None  # that sentence's character span in `text`
    relevance: float = 0.0  # P(chunk holds the answer), see core.rag.relevance
    # Question words counted as found through a chunk word of like meaning (question word ->
    # chunk word): only where no hit matched the question's own words well enough to answer
    # from (core.rag.rating.rate_by_meaning)
    similar_words: dict[str, str] = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # each retriever's own rank and score

    @property
    def document(self) -> str:
        """What people call the document: its title, else its file name."""
        return self.title or self.doc

    @property
    def paged(self) -> bool:
        return paged(self.pages)

    @property
    def match(self) -> Label:
        return relevance.label(self.relevance)

    def to_json(self) -> dict:
        row = asdict(self)
        row.pop("details")
        return {**row, "match": self.match}

    @classmethod
    def from_json(cls, row: dict) -> Hit:
        """A hit written by to_json (in a saved conversation); what it lacks keeps its default."""
        fields = {k: v for k, v in row.items() if k in cls.__dataclass_fields__}
        if fields.get("best_sentence") is not None:
            fields["best_sentence"] = tuple(fields["best_sentence"])
        return cls(**fields)


RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of top ranks


def candidate(chunk_id: str, entry: dict, method: str) -> Hit:
    """A search candidate's hit, from its entry of the retrievers' ranks and scores
    ({"dense": (rank, score), "bm25": (rank, score), "text", "meta"}): under "hybrid" the
    reciprocal rank fusion of both, scaled to 0-1; else the method's own score, 0 where that
    retriever did not find it (a passage placed for what it is: core.rag.placing, which names
    its retriever)."""
    found = [name for name in ("dense", "bm25") if name in entry]
    if method == "hybrid":
        rrf = sum(1.0 / (RRF_K + entry[name][0]) for name in found)
        score = rrf / (2.0 / (RRF_K + 1))
    else:
        score = entry[method][1] if method in entry else 0.0
    meta = entry["meta"]
    retriever = "both" if len(found) == 2 else found[0] if found else ""
    return Hit(rank=0, score=round(score, 4), doc=meta["file"], page=int(meta["page"]),
               chunk_id=chunk_id, text=entry["text"], retriever=retriever, doc_id=meta["doc_id"],
               chunk=int(meta["chunk"]), start=int(meta["start"]), end=int(meta["end"]),
               title=meta.get("title", ""), section=meta.get("section", ""),
               details={name: {"rank": entry[name][0], "score": round(entry[name][1], 4)}
                        for name in found})


def distinct(hits: list[Hit]) -> list[Hit]:
    """The hits less those that say what a better one of the same document says, or of one
    with the same title: the same paper uploaded as a PDF and as a web page filled two of the
    three places with one passage. Chunks of the two copies share 60-100% of their words; a
    paper's own chunks at most 30%. Two contracts made from one template are other documents,
    whose like clauses both count."""
    kept: list[tuple[Hit, set[str]]] = []
    for hit in hits:
        words = set(_WORD.findall(hit.text.lower()))
        if all(len(words & seen) < SAME_WORDS * len(words | seen) for other, seen in kept
               if other.doc_id == hit.doc_id or (hit.title and other.title == hit.title)):
            kept.append((hit, words))
    return [hit for hit, _ in kept]

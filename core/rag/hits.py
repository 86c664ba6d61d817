"""One retrieved chunk, as search returns it, prompts number it and pages draw it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core.rag import relevance
from core.rag.relevance import Label


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

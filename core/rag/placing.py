"""Passages placed first for what they are, not for how well their words match the question:
a document's opening or abstract for a question about the document itself (core.rag.front_matter,
core.rag.overview), the part asked for (core.rag.parts), the definition of an abbreviation asked
about (core.rag.definitions), and the passage that gives the amount asked for
(core.rag.quantities). core.rag.retrieval.search calls them on its candidates."""

from __future__ import annotations

from typing import Protocol

from core.rag import definitions, front_matter, naming, overview, parts, quantities, relevance
from core.rag.bm25 import bm25_index
from core.rag.hits import Hit, candidate, distinct
from core.settings import Settings


class Scope(Protocol):
    """What of core.rag.retrieval.RetrievalOptions placing reads (retrieval imports this
    module, not the other way round)."""

    @property
    def k(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def doc_ids(self) -> tuple[str, ...]: ...
    @property
    def labels(self) -> tuple[str, ...]: ...

# placed first for what they are, however their words match: a definition, a part asked for
PLACED = frozenset({definitions.RETRIEVER, parts.RETRIEVER})


def amount_within_k(hits: list[Hit], asked: quantities.Counted, k: int) -> list[Hit]:
    """For a question asking for an amount, the best candidate that gives an amount of what it
    counts (core.rag.quantities) in the k-th place, where none of the first k gives one, or
    none gives it in a sentence with as many of the question's other words: asked how many
    layers the Transformer's encoder has, the passages held the decoder's "N = 6 identical
    layers", and the encoder's ranked 6th."""
    given = [quantities.amount_given(h.text, asked) for h in hits[:relevance.RESCORED]]
    within = max((g for g in given[:k] if g is not None), default=-1)
    # the one with the most of the question (ties: the better ranked), not merely the first:
    # over BERT, "the last 4 layers of BERT" ranked above "BERTBASE (L=12, …)"
    found = [(g, -i) for i, g in enumerate(given) if i >= k and g is not None and g > within]
    if not found:
        return hits
    better = hits[-max(found)[1]]
    rest = [h for h in hits if h is not better]
    return [*rest[:k - 1], better, *rest[k - 1:]]


def openings(collection, settings: Settings, question: str, options: Scope,
              hits: list[Hit], ranked: dict[str, dict], what_about: bool) -> list[Hit]:
    """The opening chunks of the documents that a question about a document itself names or
    retrieved (core.rag.front_matter), each said to be there as an opening, or, asked what a
    document is about (`what_about`), its abstract's (core.rag.overview); one that retrieval found keeps its
    scores."""
    index = bm25_index(collection, settings.indexes_dir)
    ranked_docs = [h.doc_id for h in hits]
    if what_about:
        return distinct([_placed(index, i, hits, ranked, options.method, overview.RETRIEVER)
                         for i in overview.chunks(index, question, ranked_docs,
                                                  options.doc_ids, options.k)])
    answers = relevance.answerable([h.relevance for h in hits[:options.k]])
    placed = [_placed(index, i, hits, ranked, options.method, front_matter.RETRIEVER)
              for i in front_matter.opening_chunks(index, question, ranked_docs,
                                                   options.doc_ids, options.k, answers)]
    for hit in placed:  # of a chunk after the opening that introduces the name, that sentence
        span = naming.introduction(hit.text, question) if hit.chunk else None
        if span is not None:
            hit.text, hit.start, hit.end = (hit.text[span[0]:span[1]], hit.start + span[0],
                                            hit.start + span[1])
            hit.retriever = naming.RETRIEVER
    return distinct(placed)  # a paper uploaded as a PDF and as a web page: one opening


def part_first(collection, settings: Settings, part: tuple[str, int], options: Scope,
                hits: list[Hit], ranked: dict[str, dict]) -> list[Hit]:
    """The hits with the chunks under the heading of the part asked for first (at most k of
    them), where a heading names it (core.rag.parts); one that retrieval found keeps its
    scores."""
    index = bm25_index(collection, settings.indexes_dir)
    found = parts.part_chunks(index, part, [h.doc_id for h in hits], options.doc_ids)
    first = [_placed(index, i, hits, ranked, options.method, parts.RETRIEVER)
             for i in found[:options.k]]
    return [*first, *(h for h in hits if h not in first)]


def definition_first(collection, settings: Settings, abbreviation: str,
                      options: Scope, hits: list[Hit], ranked: dict[str, dict]
                      ) -> list[Hit]:
    """The hits with the chunk that defines the abbreviation asked about first, where a chunk
    does (core.rag.definitions); one that retrieval found keeps its scores."""
    index = bm25_index(collection, settings.indexes_dir)
    at = definitions.defining_chunk(index, abbreviation, [h.doc_id for h in hits],
                                    options.doc_ids, options.labels)
    if at is None:
        return hits
    first = _placed(index, at, hits, ranked, options.method, definitions.RETRIEVER)
    return [first, *(h for h in hits if h is not first)]


def _placed(index, at: int, hits: list[Hit], ranked: dict[str, dict], method: str,
            retriever: str) -> Hit:
    """The hit for chunk `at` of the keyword index, said to come from `retriever`: the one
    retrieval returned, with its scores, else one made from the index."""
    cid = index.ids[at]
    hit = next((h for h in hits if h.chunk_id == cid), None) or candidate(
        cid, ranked.get(cid) or {"text": index.texts[at], "meta": index.metas[at]}, method)
    hit.retriever = retriever
    return hit

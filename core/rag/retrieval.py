"""Finding the chunks that answer a question: dense (embeddings in Chroma), BM25 (keywords), or
hybrid (both, fused by reciprocal rank), optionally diversified with MMR.

Every raw score is in 0–1 and means one thing per method (see SCORE_MEANING); each hit also
carries a relevance that means the same for every method (core.rag.relevance), which is what
people are shown first.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from core.errors import InputError
from core.rag import (
    acronyms,
    definitions,
    front_matter,
    naming,
    overview,
    parts,
    placing,
    quantities,
    relevance,
    store,
)
from core.rag.bm25 import bm25_index
from core.rag.embeddings import query_embedder
from core.rag.hits import Hit, candidate, distinct
from core.rag.rating import Reading, rate, rate_by_meaning
from core.rag.terms import question_terms
from core.settings import Settings

Method = Literal["dense", "bm25", "hybrid"]
# Over the BERT paper (k=5, three questions) the prompt grew from ~800 tokens (window 0) to
# ~1,400 (1) and ~2,100 (2); with chunking v2 all three answers were already in window 0, so one
# neighbour each side is the margin for answers that run on, at under twice the prompt.
DEFAULT_K = 3
DEFAULT_WINDOW = 1
MAX_WINDOW = 3
# Neighbouring text the model reads in all, best hits first (0: as much as its window holds).
# bench/answers.py, 0.5B model, 30 + 30 SQuAD and 24 + 6 QASPER questions, idle machine, three
# runs (bench/README.md): token F1 SQuAD / QASPER 0.34-0.36 / 0.13-0.14 at 128 tokens, 0.38 /
# 0.12 at 64, 0.37 / 0.13 with no neighbours; median time to first token x1.30-1.34 /
# x1.63-1.72 the reference set-up's at 128 (issue 13's bound: x1.5), x1.12-1.14 / x1.30-1.35 at
# 64. At 64 a whole 500-character neighbour does not fit; a short one (a paragraph's or a
# section's end) does.
DEFAULT_WINDOW_TOKENS = 64
MAX_WINDOW_TOKENS = 8192
SCORE_MEANING = {
    "dense": "cosine similarity between question and chunk (1 = same meaning)",
    "bm25": "BM25 keyword score relative to the best match for this question (1 = best)",
    "hybrid": "reciprocal-rank fusion of dense and BM25 ranks (1 = ranked first by both)",
}


@dataclass(frozen=True)
class RetrievalOptions:
    k: int = DEFAULT_K
    method: Method = "hybrid"
    mmr: bool = False
    min_score: float = 0.0
    doc_ids: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # only chunks labelled so (store.LABEL), e.g. by a classifier
    candidates: int = 20  # per retriever, before fusion, MMR and the score floor
    window: int = DEFAULT_WINDOW  # neighbouring chunks each side that the model also reads
    window_tokens: int = DEFAULT_WINDOW_TOKENS  # at most this much of them in all (0: no cap)
    # The candidates ordered by calibrated relevance (core.rag.relevance: cosine and question-word
    # coverage) rather than by the method's own score. bench/retrieval.py, hybrid: hit@3 0.49 →
    # 0.53 on QASPER and 0.95 → 0.97 on SQuAD, hit@5 0.63 → 0.72 and 0.96 → 0.99 (hit@1 on
    # QASPER 0.26 → 0.19); the relevance was fitted on the same questions, with 3 parameters.
    rerank: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 50:
            raise InputError(f"k must be between 1 and 50, got {self.k}")
        if self.method not in SCORE_MEANING:
            raise InputError(f"method must be dense, bm25 or hybrid, got {self.method!r}")
        if not 0 <= self.min_score <= 1:
            raise InputError(f"minimum score must be between 0 and 1, got {self.min_score}")
        if not 0 <= self.window <= MAX_WINDOW:
            raise InputError(f"window must be between 0 and {MAX_WINDOW} chunks, "
                             f"got {self.window}")
        if not 0 <= self.window_tokens <= MAX_WINDOW_TOKENS:
            raise InputError(f"window_tokens must be between 0 and {MAX_WINDOW_TOKENS}, "
                             f"got {self.window_tokens}")


@dataclass
class SearchResult:
    hits: list[Hit]
    method: Method
    score_meaning: str
    seconds: float
    # The hits were placed for what they are, not found by their words: documents' openings or
    # abstracts, for a question about a document itself (core.rag.front_matter), or the part
    # of one asked for (core.rag.parts). They answer however weakly they match it.
    placed: bool = False
    query: str = ""  # what was searched for: the question, its acronyms and abbreviations spelled out
    # The documents whose chunks come first: those the question names
    # (core.rag.naming.named_documents), else those the conversation is about; none where
    # there are none, or the others answer it better. `because` says which: WITHIN_REASONS
    within: tuple[str, ...] = ()
    because: str = ""


# Why a search looked in some documents first (SearchResult.because), as the Chat page and
# `ask` say it after "searched in X first, "
WITHIN_REASONS = {"named": "which the question names",
                  "discussed": "which the conversation is about"}


def search(settings: Settings, collection_name: str, question: str,
           options: RetrievalOptions = RetrievalOptions(), chroma=None,
           embedding_model: str | None = None, asked: str | None = None,
           discussed: tuple[str, ...] = ()) -> SearchResult:
    """`asked`: what the user asked, when `question` is a follow-up's standalone query; it alone
    says whether the question is about a document itself (core.rag.front_matter), as the
    earlier questions of a standalone query may have been. `discussed`: the documents the
    conversation is about (those the previous answer cites), searched first where the question
    names none."""
    if not question.strip():
        raise InputError("the question is empty")
    chroma = chroma or store.client(settings)
    collection = store.get_collection(chroma, collection_name)
    built_with = (collection.metadata or {}).get("embedding_model", settings.embedding_model)
    if embedding_model and embedding_model != built_with:
        raise store.StoreError(f"collection {collection_name!r} was built with {built_with}; "
                               f"it cannot be searched with {embedding_model}")
    embedder = query_embedder(settings, built_with)  # every method: relevance needs the cosine
    started = time.perf_counter()  # timings cover the search, not loading the model once
    index = bm25_index(collection, settings.indexes_dir)
    about_document = front_matter.asks_about_document(asked or question)
    named: list[str] = []
    because = ""
    if options.rerank and not about_document:
        named, because = naming.named_documents(index, question, options.doc_ids), "named"
        if not named:
            # A follow-up is about what the conversation is about: after "What is the
            # Transformer?" (answered from its paper, among seven), "How many layers does its
            # encoder have?", searched for "Transformer layers", was answered "2" from LoRA's
            # paper
            searched = set(options.doc_ids or index.doc_ids)
            # all of them is none first (a conversation over a one-document collection)
            named = [d for d in discussed if d in searched] if searched - set(discussed) else []
            because = "discussed"
    if acronyms.acronyms(question):
        question = acronyms.expand(question, index.titles)
    spelled_out = definitions.spelled_out(question, definitions.abbreviations(index), asked)
    # rated by its own words, the abbreviations it was searched for read as those words
    rated = question
    question = definitions.with_definitions(question, spelled_out)
    query_vector = np.asarray(embedder.embed([question])[0])
    # Every method's relevance weighs the question's words by how rare they are here: over the
    # seven shared papers, "Which optimizer was used to train the Transformer?" counted "used"
    # as much as "optimizer"; and reads each chunk with the names its document is known by as
    # well as its title: the Transformer paper's "5.3 Optimizer" counted "Transformer" as
    # missing, BERT's chunks (titled "… Bidirectional Transformers …") as found
    reading = Reading(index.idf(question_terms(rated)), naming.known_as(index), spelled_out)
    rate_hits = functools.partial(rate, collection, embedder, query_vector, rated, reading=reading)

    def candidates(within: RetrievalOptions) -> tuple[list[Hit], dict[str, dict]]:
        ranked = _ranked(collection, index, query_vector, question, within)
        hits = [candidate(cid, entry, within.method) for cid, entry in ranked.items()]
        hits.sort(key=lambda h: h.score, reverse=True)
        hits = [h for h in hits if h.score >= within.min_score]
        if within.rerank:
            rate_hits(hits)
            hits.sort(key=lambda h: h.relevance, reverse=True)  # stable: ties keep fused order
        return distinct(hits), ranked

    # A question that names some of the documents ("… train the Transformer?", "… does QLoRA
    # need …?"), or follows up on an answer from them, is about them: over the seven shared
    # papers the first was answered from LoRA's table of hyperparameters ("AdamW"). Where they
    # match it only weakly, the others are searched too, and the better answered: BERT's paper
    # reports the SWAG scores asked of "the Transformer"; where they hold fewer than k chunks,
    # the others' follow theirs.
    hits, ranked = candidates(replace(options, doc_ids=tuple(named)) if named else options)
    weak = weakly_matched(hits)
    if named and (weak or len(hits) < options.k):
        wider, wider_ranked = candidates(options)
        if weak and _best(wider) > _best(hits):
            named, hits, ranked = [], wider, wider_ranked
        else:
            held = {h.chunk_id for h in hits}
            hits += [h for h in wider if h.chunk_id not in held]
            ranked = wider_ranked | ranked
    if options.mmr and len(hits) > options.k:
        hits = _mmr(collection, query_vector, hits, options.k)
    if (abbreviation := definitions.asked_abbreviation(asked or question)) is not None:
        done = {h.chunk_id for h in hits}
        # in the documents named first: SC-LoRA's "Low-Rank Adaptation (LoRA)" was put before
        # the LoRA paper's own passages for "What is LoRA?"
        hits = placing.definition_first(collection, settings, abbreviation,
                                 replace(options, doc_ids=tuple(named)) if named else options,
                                 hits, ranked)
        if options.rerank and hits and hits[0].chunk_id not in done:
            rate_hits(hits[:1])
    if (part := parts.asked_part(asked or question)) is not None:
        done = {h.chunk_id for h in hits}
        hits = placing.part_first(collection, settings, part, options, hits, ranked)
        if options.rerank:
            rate_hits([h for h in hits if h.chunk_id not in done])
    if options.rerank and not about_document and (amount := quantities.counted(asked or question)):
        hits = placing.amount_within_k(hits, amount, options.k)
    openings: list[Hit] = []
    if about_document:
        # Only the openings: other passages drew the 0.5B to names in their citations
        # ("Who are the authors of the GAN paper?" -> "2024", from another paper's references)
        openings = placing.openings(collection, settings, question, options, hits, ranked,
                             overview.asks_what_it_is_about(asked or question))
        if options.rerank:  # those that retrieval missed are rated here
            done = {h.chunk_id for h in hits}
            rate_hits([h for h in openings if h.chunk_id not in done])
    # at most k documents' openings (with their closings, for the parties), else k hits
    hits = openings or hits[:options.k]
    if not options.rerank:
        rate_hits(hits)
    placed = bool(openings) or any(h.retriever == parts.RETRIEVER for h in hits)
    if not placed and not relevance.answerable([h.relevance for h in hits]):
        # A second look before the question is refused: in other words than the documents'
        rate_by_meaning(embedder, rated, hits, reading)
        if options.rerank:  # the order stays the one the marks show; what is placed first stays
            lead = next((i for i, h in enumerate(hits) if h.retriever not in placing.PLACED), len(hits))
            hits[lead:] = sorted(hits[lead:], key=lambda h: h.relevance, reverse=True)
    for rank, hit in enumerate(hits, 1):
        hit.rank, hit.pages = rank, index.pages[hit.doc_id]
    return SearchResult(hits, options.method, SCORE_MEANING[options.method],
                        time.perf_counter() - started, placed, question, tuple(named),
                        because if named else "")


def worth_reading(hits: list[Hit]) -> list[Hit]:
    """The hits less the weak ones where one is a strong match (a definition or a part placed first
    stays, however it matches). Given a weak third passage, "4.1 GLUE" beside BERT's abstract,
    the 0.5B answered "What does BERT stand for?" with "BERT [1]"."""
    if relevance.label(_best(hits)) != "strong":
        return hits
    return [h for h in hits if relevance.label(h.relevance) != "weak"
            or h.retriever in placing.PLACED]


def weakly_matched(hits: list[Hit]) -> bool:
    """Whether even the best of `hits` is a weak match (core.rag.relevance.label)."""
    return relevance.label(_best(hits)) == "weak"


def _best(hits: list[Hit]) -> float:
    return max((h.relevance for h in hits), default=0.0)


def _ranked(collection, index, query_vector: np.ndarray, question: str,
            options: RetrievalOptions) -> dict[str, dict]:
    """Each candidate's chunk id -> {"dense": (rank, score), "bm25": (rank, score), "text",
    "meta"}, for the retrievers of the method."""
    ranked: dict[str, dict] = {}
    if options.method in ("dense", "hybrid"):
        got = collection.query(query_embeddings=[query_vector.tolist()],
                               n_results=options.candidates, where=_where(options),
                               include=["documents", "metadatas", "distances"])
        for rank, (cid, text, meta, dist) in enumerate(zip(
                got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0]), 1):
            entry = ranked.setdefault(cid, {"text": text, "meta": meta})
            entry["dense"] = (rank, max(0.0, 1.0 - float(dist)))
    if options.method in ("bm25", "hybrid"):
        results = index.search(question, options.candidates, options.doc_ids, options.labels)
        best = results[0][1] if results else 1.0
        for rank, (i, score) in enumerate(results, 1):
            entry = ranked.setdefault(index.ids[i], {"text": index.texts[i],
                                                     "meta": index.metas[i]})
            entry["bm25"] = (rank, score / best)
    return ranked


def _where(options: RetrievalOptions) -> dict | None:
    """The Chroma filter for the options' document and label filters (BM25 applies the same
    ones as a mask in Bm25Index.search)."""
    parts = [{key: {"$in": list(values)}} for key, values in
             (("doc_id", options.doc_ids), (store.LABEL, options.labels)) if values]
    return parts[0] if len(parts) == 1 else {"$and": parts} if parts else None


def _mmr(collection, query_vector, hits: list[Hit], k: int) -> list[Hit]:
    """Maximal marginal relevance: trade a little relevance for chunks that say new things."""
    from langchain_core.vectorstores.utils import maximal_marginal_relevance

    got = collection.get(ids=[h.chunk_id for h in hits], include=["embeddings"])
    vectors = dict(zip(got["ids"], got["embeddings"]))
    order = maximal_marginal_relevance(query_vector, [vectors[h.chunk_id] for h in hits],
                                       lambda_mult=0.7, k=k)
    return [hits[i] for i in order]

"""Finding the chunks that answer a question: dense (embeddings in Chroma), BM25 (keywords), or
hybrid (both, fused by reciprocal rank), optionally diversified with MMR.

Every raw score is in 0–1 and means one thing per method (see SCORE_MEANING); each hit also
carries a relevance that means the same for every method (core.rag.relevance), which is what
people are shown first.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from core import files
from core.errors import InputError
from core.rag import relevance, store
from core.rag.chunking import contextual_text, sentence_spans
from core.rag.embeddings import query_embedder
from core.rag.relevance import Label
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
RRF_K = 60  # the constant from Cormack et al. (2009); damps the weight of top ranks
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
class Hit:
    rank: int
    score: float
    doc: str  # file name
    page: int
    chunk_id: str
    text: str
    retriever: str  # "dense", "bm25" or "both"
    doc_id: str = ""
    chunk: int = 0
    start: int = 0  # character span within its page
    end: int = 0
    title: str = ""  # the document's
    section: str = ""  # the heading the chunk falls under
    cosine: float = 0.0  # dense similarity to the question, whatever the method
    coverage: float = 0.0  # share of the question's content words found in the chunk
    sentence_cosine: float | None = None  # its best sentence's (rated again: the top ones only)
    best_sentence: tuple[int, int] | None = None  # that sentence's character span in `text`
    relevance: float = 0.0  # P(chunk holds the answer), see core.rag.relevance
    details: dict = field(default_factory=dict)  # each retriever's own rank and score

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


@dataclass
class SearchResult:
    hits: list[Hit]
    method: Method
    score_meaning: str
    seconds: float


# BM25 -------------------------------------------------------------------------------------
class Bm25Index:
    """Keywords of each chunk read with its document title and section, as the embeddings
    read it; `texts` stay the plain chunk texts that hits show."""

    CHUNKS = "chunks.json"  # ids, texts and metadata beside bm25s's own files

    def __init__(self, ids: list[str], texts: list[str], metas: list[dict], retriever=None):
        import bm25s

        self.ids, self.texts, self.metas = ids, texts, metas
        self.retriever = retriever
        if retriever is None:
            self.retriever = bm25s.BM25()
            if ids:
                contextual = [contextual_text(m.get("title", ""), m.get("section", ""), t)
                              for t, m in zip(texts, metas)]
                self.retriever.index(_tokenize(contextual), show_progress=False)

    def save(self, folder: Path) -> None:
        """Written whole or not at all: another process may be loading it."""
        with files.replacing_folder(folder) as staging:
            if self.ids:
                self.retriever.save(str(staging), show_progress=False)
            files.write_json(staging / self.CHUNKS, {"ids": self.ids, "texts": self.texts,
                                                     "metas": self.metas})

    @classmethod
    def load(cls, folder: Path) -> Bm25Index | None:
        import bm25s

        chunks = files.read_json(folder / cls.CHUNKS)
        if not isinstance(chunks, dict):
            return None
        retriever = (bm25s.BM25.load(str(folder), show_progress=False) if chunks["ids"]
                     else bm25s.BM25())
        return cls(chunks["ids"], chunks["texts"], chunks["metas"], retriever)

    def search(self, query: str, n: int, doc_ids: tuple[str, ...] = (),
               labels: tuple[str, ...] = ()) -> list[tuple[int, float]]:
        if not self.ids:
            return []
        mask = None
        if doc_ids or labels:
            mask = np.array([(not doc_ids or m["doc_id"] in doc_ids)
                             and (not labels or m.get(store.LABEL) in labels)
                             for m in self.metas], dtype=np.float32)
        tokens = _tokenize([query])
        n = min(n, len(self.ids))
        docs, scores = self.retriever.retrieve(tokens, k=n, show_progress=False,
                                               weight_mask=mask)
        return [(int(i), float(s)) for i, s in zip(docs[0], scores[0]) if s > 0]


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer().stemWords,
                          show_progress=False)


_WORD = re.compile(r"\w+")
_CLOSING = re.compile(r"(?:['’]s)?[.,;:!?)\]}”’'\"]*(?!\w)")  # "BERT's", not "don't"
_OPENING = "([{“‘'\""


def question_terms(question: str) -> set[str]:
    """The question's words that are not stop words, as stems (as BM25 matches them)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stem = _stemmer().stemWord
    return {stem(w.lower()) for w in _WORD.findall(question)
            if len(w) >= 3 and w.lower() not in ENGLISH_STOP_WORDS}


def coverage(text: str, terms: set[str]) -> float:
    if not terms:
        return 0.0
    stem = _stemmer().stemWord
    return len(terms & {stem(w.lower()) for w in _WORD.findall(text)}) / len(terms)


def highlight_spans(text: str, question: str) -> list[tuple[str, bool]]:
    """The text cut into (segment, matches-a-question-term) pieces. Each mark is drawn padded,
    so the punctuation that touches a word goes inside its mark ("(BERT)", "tasks,",
    "BERT's"): outside it would read "( BERT )" and "tasks ,"; and neighbouring terms make one
    mark, as "pre-training" or "generative models" would otherwise read "pre - training"."""
    stem = _stemmer().stemWord
    terms = question_terms(question)
    spans: list[tuple[str, bool]] = []
    last = 0
    for match in _WORD.finditer(text):
        if stem(match.group(0).lower()) not in terms:
            continue
        gap = text[last:match.start()]
        closing = _CLOSING.match(text, match.end())
        end = closing.end() if closing else match.end()
        if spans and spans[-1][1] and spans[-1][0][-1].isalnum() and gap in ("-", " "):
            spans[-1] = (spans[-1][0] + gap + text[match.start():end], True)
        else:
            opening = len(gap) - len(gap.rstrip(_OPENING))
            if gap[:len(gap) - opening]:
                spans.append((gap[:len(gap) - opening], False))
            spans.append((text[match.start() - opening:end], True))
        last = end
    if last < len(text):
        spans.append((text[last:], False))
    return spans


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


_bm25_cache: dict[tuple[str, str], tuple[int, Bm25Index]] = {}
_bm25_lock = threading.Lock()


def bm25_index(collection, index_dir: Path) -> Bm25Index:
    """The collection's keyword index for its current revision (bumped by every write): from
    memory, else from `index_dir`, else built from the collection and saved there, so a fresh
    process (`python -m core search`) does not rebuild it."""
    key = (str(collection.id), collection.name)
    rev = store.revision(collection)
    folder = Path(index_dir) / f"{collection.name}-{collection.id}" / f"bm25-r{rev}"
    with _bm25_lock:
        cached = _bm25_cache.get(key)
        if cached and cached[0] == rev:
            return cached[1]
        index = Bm25Index.load(folder)
        if index is None:
            got = store.read_all(collection, ["documents", "metadatas"])
            index = Bm25Index(got["ids"], got["documents"], got["metadatas"])
            index.save(folder)
            for older in folder.parent.glob("bm25-r*"):
                if older != folder:
                    shutil.rmtree(older, ignore_errors=True)
        _bm25_cache[key] = (rev, index)
        return index


# Search -----------------------------------------------------------------------------------
def search(settings: Settings, collection_name: str, question: str,
           options: RetrievalOptions = RetrievalOptions(), chroma=None,
           embedding_model: str | None = None) -> SearchResult:
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
    ranked: dict[str, dict] = {}  # chunk id -> {"dense": (rank, score), "bm25": ..., row}

    query_vector = np.asarray(embedder.embed([question])[0])
    if options.method in ("dense", "hybrid"):
        got = collection.query(query_embeddings=[query_vector.tolist()],
                               n_results=options.candidates, where=_where(options),
                               include=["documents", "metadatas", "distances"])
        for rank, (cid, text, meta, dist) in enumerate(zip(
                got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0]), 1):
            entry = ranked.setdefault(cid, {"text": text, "meta": meta})
            entry["dense"] = (rank, max(0.0, 1.0 - float(dist)))
    if options.method in ("bm25", "hybrid"):
        index = bm25_index(collection, settings.indexes_dir)
        results = index.search(question, options.candidates, options.doc_ids, options.labels)
        best = results[0][1] if results else 1.0
        for rank, (i, score) in enumerate(results, 1):
            entry = ranked.setdefault(index.ids[i], {"text": index.texts[i],
                                                     "meta": index.metas[i]})
            entry["bm25"] = (rank, score / best)

    hits = [_hit(cid, entry, options.method) for cid, entry in ranked.items()]
    hits.sort(key=lambda h: h.score, reverse=True)
    hits = [h for h in hits if h.score >= options.min_score]
    if options.rerank:
        _rate(collection, embedder, query_vector, question, hits)
        hits.sort(key=lambda h: h.relevance, reverse=True)  # stable: ties keep the fused order
    if options.mmr and len(hits) > options.k:
        hits = _mmr(collection, query_vector, hits, options.k)
    hits = hits[:options.k]
    for rank, hit in enumerate(hits, 1):
        hit.rank = rank
    if not options.rerank:
        _rate(collection, embedder, query_vector, question, hits)
    return SearchResult(hits, options.method, SCORE_MEANING[options.method],
                        time.perf_counter() - started)


def _where(options: RetrievalOptions) -> dict | None:
    """The Chroma filter for the options' document and label filters (BM25 applies the same
    ones as a mask in Bm25Index.search)."""
    parts = [{key: {"$in": list(values)}} for key, values in
             (("doc_id", options.doc_ids), (store.LABEL, options.labels)) if values]
    return parts[0] if len(parts) == 1 else {"$and": parts} if parts else None


def _hit(chunk_id: str, entry: dict, method: Method) -> Hit:
    found = [name for name in ("dense", "bm25") if name in entry]
    if method == "hybrid":
        rrf = sum(1.0 / (RRF_K + entry[name][0]) for name in found)
        score = rrf / (2.0 / (RRF_K + 1))
    else:
        score = entry[method][1]
    meta = entry["meta"]
    return Hit(rank=0, score=round(score, 4), doc=meta["file"], page=int(meta["page"]),
               chunk_id=chunk_id, text=entry["text"],
               retriever="both" if len(found) == 2 else found[0], doc_id=meta["doc_id"],
               chunk=int(meta["chunk"]), start=int(meta["start"]), end=int(meta["end"]),
               title=meta.get("title", ""), section=meta.get("section", ""),
               details={name: {"rank": entry[name][0], "score": round(entry[name][1], 4)}
                        for name in found})


def _rate(collection, embedder, query_vector, question: str, hits: list[Hit]) -> None:
    """Each hit's cosine (read from its stored vector when dense search did not rank it),
    question-word coverage and calibrated relevance; the most relevant ones rated again from
    their best sentence (core.rag.relevance.RESCORED)."""
    missing = [h.chunk_id for h in hits if "dense" not in h.details]
    vectors = {}
    if missing:
        got = collection.get(ids=missing, include=["embeddings"])
        vectors = dict(zip(got["ids"], got["embeddings"]))
    terms = question_terms(question)
    for hit in hits:
        hit.cosine = round(hit.details["dense"]["score"] if "dense" in hit.details
                           else max(0.0, float(np.dot(query_vector, vectors[hit.chunk_id]))), 4)
        hit.coverage = round(coverage(contextual_text(hit.title, hit.section, hit.text), terms), 4)
        hit.relevance = round(relevance.relevance(hit.cosine, hit.coverage), 4)
    best = sorted(hits, key=lambda h: h.relevance, reverse=True)[:relevance.RESCORED]
    for hit, rows in zip(best, _sentence_vectors(embedder, [h.text for h in best])):
        cosines = rows @ query_vector
        hit.best_sentence = _sentences(hit.text)[int(cosines.argmax())]
        hit.sentence_cosine = round(max(0.0, float(cosines.max())), 4)
        hit.relevance = round(relevance.sentence_relevance(hit.sentence_cosine, hit.coverage), 4)


# Sentence vectors of recently rated chunks, by (model, chunk text): questions about one
# collection keep meeting the same chunks, and embedding them is most of a search's time
# (about 0.27 s for 12 chunks on 2 cores, against 0.015 s for the rest). About 6 KB a chunk.
SENTENCE_CACHE = 2048
_sentence_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_sentence_lock = threading.Lock()


def _sentences(text: str) -> list[tuple[int, int]]:
    """The spans that are embedded as sentences: a text without a sentence is one."""
    return sentence_spans(text) or [(0, len(text))]


def _sentence_vectors(embedder, texts: list[str]) -> list[np.ndarray]:
    """Each text's sentence vectors (one row for each of `_sentences`)."""
    keys = [(embedder.model_name, text) for text in texts]
    with _sentence_lock:
        found = {k: _sentence_cache[k] for k in keys if k in _sentence_cache}
        for key in found:
            _sentence_cache.move_to_end(key)
    missing = [k for k in dict.fromkeys(keys) if k not in found]
    if missing:
        pieces = [[text[a:b] for a, b in _sentences(text)] for _, text in missing]
        vectors = np.asarray(embedder.embed([p for ps in pieces for p in ps]), np.float32)
        found |= zip(missing, np.split(vectors, np.cumsum([len(ps) for ps in pieces])[:-1]))
        with _sentence_lock:
            _sentence_cache.update((k, found[k]) for k in missing)
            while len(_sentence_cache) > SENTENCE_CACHE:
                _sentence_cache.popitem(last=False)
    return [found[key] for key in keys]


def _mmr(collection, query_vector, hits: list[Hit], k: int) -> list[Hit]:
    """Maximal marginal relevance: trade a little relevance for chunks that say new things."""
    from langchain_core.vectorstores.utils import maximal_marginal_relevance

    got = collection.get(ids=[h.chunk_id for h in hits], include=["embeddings"])
    vectors = dict(zip(got["ids"], got["embeddings"]))
    order = maximal_marginal_relevance(query_vector, [vectors[h.chunk_id] for h in hits],
                                       lambda_mult=0.7, k=k)
    return [hits[i] for i in order]

"""Rating retrieved chunks on the one relevance scale of core.rag.relevance: every hit from
its cosine and question-word coverage, the leading ones again from their best sentence."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from core.rag import relevance
from core.rag.chunking import contextual_text, sentence_spans
from core.rag.hits import Hit
from core.rag.layout import is_heading
from core.rag.terms import coverage, question_terms

# Sentence vectors of recently rated chunks, by (model, chunk text): questions about one
# collection keep meeting the same chunks, and embedding them is most of a search's time
# (about 0.27 s for 12 chunks on 2 cores, against 0.015 s for the rest). About 6 KB a chunk.
SENTENCE_CACHE = 2048
_sentence_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_sentence_lock = threading.Lock()


def rate(collection, embedder, query_vector: np.ndarray, question: str,
         hits: list[Hit]) -> None:
    """Each hit's cosine (read from its stored vector when dense search did not rank it),
    question-word coverage and calibrated relevance; the most relevant ones rated again from
    their best sentence (core.rag.relevance.RESCORED), whose span they keep."""
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
    for hit, rows in zip(best, sentence_vectors(embedder, [h.text for h in best])):
        cosines = rows @ query_vector
        hit.best_sentence = without_heading(hit.text, sentences(hit.text)[int(cosines.argmax())])
        hit.sentence_cosine = round(max(0.0, float(cosines.max())), 4)
        hit.relevance = round(relevance.sentence_relevance(hit.sentence_cosine, hit.coverage), 4)


def sentences(text: str) -> list[tuple[int, int]]:
    """The spans that are embedded as sentences: a text without a sentence is one."""
    return sentence_spans(text) or [(0, len(text))]


def without_heading(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """The span less a heading line that opens it: a heading is embedded with the sentence
    after it ("Abstract" alone is no sentence), but the sentence is what answers."""
    start, end = span
    head, newline, rest = text[start:end].partition("\n")
    if newline and rest.strip() and is_heading(head):
        start = end - len(rest.lstrip())
    return start, end


def sentence_vectors(embedder, texts: list[str]) -> list[np.ndarray]:
    """Each text's sentence vectors (one row for each of `sentences`)."""
    keys = [(embedder.model_name, text) for text in texts]
    with _sentence_lock:
        found = {k: _sentence_cache[k] for k in keys if k in _sentence_cache}
        for key in found:
            _sentence_cache.move_to_end(key)
    missing = [k for k in dict.fromkeys(keys) if k not in found]
    if missing:
        pieces = [[text[a:b] for a, b in sentences(text)] for _, text in missing]
        vectors = np.asarray(embedder.embed([p for ps in pieces for p in ps]), np.float32)
        found |= zip(missing, np.split(vectors, np.cumsum([len(ps) for ps in pieces])[:-1]))
        with _sentence_lock:
            _sentence_cache.update((k, found[k]) for k in missing)
            while len(_sentence_cache) > SENTENCE_CACHE:
                _sentence_cache.popitem(last=False)
    return [found[key] for key in keys]

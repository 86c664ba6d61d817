"""Rating retrieved chunks on the one relevance scale of core.rag.relevance: every hit from
its cosine and question-word coverage, the leading ones again from their best sentence, and,
where no hit passes the bar for answering, the hits again with words of like meaning counted
(`rate_by_meaning`)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from core.rag import relevance, tables
from core.rag.chunking import contextual_text, sentence_spans
from core.rag.hits import Hit
from core.rag.layout import is_heading
from core.rag.terms import content_words, coverage, question_terms, weighed

# At 0.5 "programming" counted as covered over the Square One forms (0.51) for an off-topic
# question; 0.6 missed "salary" ~ "Compensation" (0.598). Pairs seen: salary-compensation 0.60,
# charge-fees 0.60, paid-pay 0.81, wage-pay 0.73; unrelated: parties-signature 0.16,
# bread-company 0.32, capital-france 0.30.
SIMILAR_WORD_MIN = 0.55

# Sentence vectors of recently rated chunks, by (model, chunk text): questions about one
# collection keep meeting the same chunks, and embedding them is most of a search's time
# (about 0.27 s for 12 chunks on 2 cores, against 0.015 s for the rest). About 6 KB a chunk.
SENTENCE_CACHE = 2048
_sentence_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_sentence_lock = threading.Lock()


@dataclass(frozen=True)
class Reading:
    """How the question's words are looked for in a chunk. `weights`: each word's IDF in the
    collection (a rare word counts for more). `known_as`: doc id -> the names the document is
    known by, read with the chunk as its title is. `spelled_out`: abbreviation -> the words
    of it that the question uses (core.rag.definitions.spelled_out): a chunk that writes the
    abbreviation holds those words. Search also looks for the abbreviation, but counted as a
    word of the question of its own, a chunk that wrote "LMs" and not "language models" (or
    the other way round) held only part of "language models (LM)"."""
    weights: dict[str, float] | None = None
    known_as: dict[str, str] = field(default_factory=dict)
    spelled_out: dict[str, str] = field(default_factory=dict)


def rate(collection, embedder, query_vector: np.ndarray, question: str, hits: list[Hit],
         reading: Reading = Reading()) -> None:
    """Each hit's cosine (read from its stored vector when dense search did not rank it),
    question-word coverage (the chunk read with its title, section and as `reading` says) and
    calibrated relevance; the most relevant ones rated again from their best sentence
    (core.rag.relevance.RESCORED), whose span they keep."""
    missing = [h.chunk_id for h in hits if "dense" not in h.details]
    vectors = {}
    if missing:
        got = collection.get(ids=missing, include=["embeddings"])
        vectors = dict(zip(got["ids"], got["embeddings"]))
    terms = question_terms(question)
    for hit in hits:
        hit.cosine = round(hit.details["dense"]["score"] if "dense" in hit.details
                           else max(0.0, float(np.dot(query_vector, vectors[hit.chunk_id]))), 4)
        hit.coverage = round(coverage(in_context(hit, reading), terms, reading.weights), 4)
        hit.relevance = (0.0 if only_its_heading(hit)
                         else round(relevance.relevance(hit.cosine, hit.coverage), 4))
    # A table's chunk (its caption and rows) has no sentence to be rated by: rated from its
    # best "sentence", BERT's SQuAD 1.1 table fell from 0.66 to 0.42 and out of the top 3 for
    # "What F1 does BERT get on SQuAD v1.1?", under prose that only mentions the results
    best = [h for h in sorted(hits, key=lambda h: h.relevance, reverse=True)[:relevance.RESCORED]
            if not tables.is_table(h.text) and not only_its_heading(h)]
    for hit, rows in zip(best, sentence_vectors(embedder, [h.text for h in best])):
        cosines = rows @ query_vector
        hit.best_sentence = without_heading(hit.text, sentences(hit.text)[int(cosines.argmax())])
        hit.sentence_cosine = round(max(0.0, float(cosines.max())), 4)
        hit.relevance = estimate(hit, hit.coverage)


def only_its_heading(hit: Hit) -> bool:
    """A chunk that is its section's heading alone, as a heading at the foot of a page is (its
    section's text is on the next page): it answers nothing, yet it is all question words.
    "A Additional Details for BERT" (0.46) was 3rd of the passages for "What data was BERT
    pre-trained on?", above the one naming BooksCorpus, and took its place in the answer's
    window."""
    return hit.text.strip() == hit.section.strip() != ""


def in_context(hit: Hit, reading: Reading) -> str:
    """The chunk as coverage reads it: with its document's title, the names the document is
    known by, its section, and the words of the abbreviations it writes."""
    title = " ".join(filter(None, (hit.title, reading.known_as.get(hit.doc_id, ""))))
    text = contextual_text(title, hit.section, hit.text)
    written = [words for abbreviation, words in reading.spelled_out.items()
               if re.search(rf"\b{re.escape(abbreviation)}s?\b", hit.text)]
    return " ".join([text, *written])


def estimate(hit: Hit, covered: float) -> float:
    """The hit's relevance with `covered` as its question-word coverage: from its best
    sentence's cosine where it was rated from it, else from the chunk's."""
    return round(relevance.relevance(hit.cosine, covered) if hit.sentence_cosine is None
                 else relevance.sentence_relevance(hit.sentence_cosine, covered), 4)


def rate_by_meaning(embedder, question: str, hits: list[Hit], reading: Reading = Reading()
                    ) -> None:
    """The hits rated again with a question word also counted as found where the chunk has a
    word of like meaning (cosine of the two words' embeddings at least SIMILAR_WORD_MIN), each
    such pair kept in `similar_words`.

    For a question that no hit matches well enough to answer from (core.rag.relevance.
    ANSWERABLE_MIN), and only for it, since it means embedding the chunks' words. The relevance
    was fitted on SQuAD and QASPER, whose questions were written with the passage in view and
    reuse its words; people ask in their own: over the two Square One forms, "What is the
    salary?" was refused though the top chunk reads "Pay {$123,456 per year}" and
    "Compensation", and so were 10 of 26 plain questions in all. Measured with the default
    MiniLM, k=3 (bench/refusals.py, bench/README.md, session 25): refused plain questions over
    the forms 10 of 26 -> 3 (of them, 14 written down before any was run: 4 -> 1); off-topic
    questions over them 14 of 14 -> 14; answerable SQuAD + QASPER questions 1 of 141 -> 0;
    each set's questions asked of the other set's documents 253 of 259 -> 243; SQuAD and
    QASPER's unanswerable questions, written against the passages that do not answer them,
    12 of 118 -> 4."""
    asked = content_words(question)
    for hit in hits:
        if only_its_heading(hit):
            continue
        found = content_words(in_context(hit, reading))
        unspelled = [word for stem, word in asked.items() if stem not in found]
        hit.similar_words = similar_words(embedder, unspelled,
                                          [w for w in found.values() if not w.isdigit()])
        if hit.similar_words:
            stems = {word: stem for stem, word in asked.items()}
            also = (weighed({stems[w] for w in hit.similar_words}, reading.weights)
                    / weighed(set(asked), reading.weights))
            hit.relevance = estimate(hit, hit.coverage + also)


def similar_words(embedder, words: list[str], others: list[str]) -> dict[str, str]:
    """Each of `words` that has a word of like meaning among `others`, with the closest one."""
    if not words or not others:
        return {}
    # Single words embed as one-sentence texts, and share the cache of sentence vectors
    vectors = np.concatenate(sentence_vectors(embedder, [*words, *others]))
    cosines = vectors[:len(words)] @ vectors[len(words):].T
    return {word: others[int(row.argmax())] for word, row in zip(words, cosines)
            if row.max() >= SIMILAR_WORD_MIN}


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

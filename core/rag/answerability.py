"""Whether the retrieved chunks bear on a question at all, or it is refused without asking the
model ("The documents do not say.", core.rag.answers).

The first test is the calibrated relevance of the best hit (core.rag.relevance.answerable).
Its question-word coverage counts words as spelled, since it was fitted on SQuAD and QASPER,
whose questions were written with the passage in view. People ask in their own words: over
the two Square One forms, "What is the salary?" was refused though the top chunk reads "Pay
{$123,456 per year}", and so were 10 of 26 plain questions in all (bench/README.md, session 25).
So a question the first test refuses gets a second look, in which a question word also counts
as covered when the chunk has a word of like meaning (cosine of the two words' embeddings at
least SIMILAR_WORD_MIN, with the collection's own embedding model).

Measured with the default MiniLM (k=3; work/scratch runs of session 25, bench/README.md):
refused plain questions over the Square One forms 10 of 26 -> 3 (of them, 14 written down
before any was run: 4 -> 1); off-topic questions over them 14 of 14 -> 14;
answerable SQuAD + QASPER questions 1 of 141 -> 0; each set's questions asked of the other
set's documents (same genre, off-topic) 253 of 259 -> 243; SQuAD and QASPER's unanswerable
questions, written against the passages that do not answer them, 12 of 118 -> 4.
"""

from __future__ import annotations

import numpy as np

from core.rag import relevance
from core.rag.chunking import contextual_text
from core.rag.embeddings import query_embedder
from core.rag.rating import sentence_vectors
from core.rag.retrieval import SearchResult
from core.rag.terms import content_words
from core.settings import Settings

# At 0.5 "programming" counted as covered over the forms (0.51) for an off-topic question;
# 0.6 missed "salary" ~ "Compensation" (0.598). Pairs seen: salary-compensation 0.60,
# charge-fees 0.60, paid-pay 0.81, wage-pay 0.73; unrelated: parties-signature 0.16,
# bread-company 0.32, capital-france 0.30.
SIMILAR_WORD_MIN = 0.55


def answerable(settings: Settings, result: SearchResult, question: str) -> bool:
    """Whether any hit of `result` is relevant enough to answer `question` from, its
    question-word coverage read by meaning where spelling alone finds it too weak (only then is
    the embedding model asked for)."""
    if relevance.answerable([h.relevance for h in result.hits]):
        return True
    asked = content_words(question)
    if not asked:
        return False
    embedder = query_embedder(settings, result.embedding_model or None)
    for hit in result.hits:
        found = {stem: word for stem, word in
                 content_words(contextual_text(hit.title, hit.section, hit.text)).items()
                 if not word.isdigit()}
        unspelled = [word for stem, word in asked.items() if stem not in found]
        covered = (len(asked) - len(unspelled)
                   + similar_count(embedder, unspelled, list(found.values()))) / len(asked)
        estimate = (relevance.relevance(hit.cosine or 0.0, covered) if hit.sentence_cosine is None
                    else relevance.sentence_relevance(hit.sentence_cosine, covered))
        if estimate >= relevance.ANSWERABLE_MIN:
            return True
    return False


def similar_count(embedder, words: list[str], others: list[str]) -> int:
    """How many of `words` have a word of like meaning among `others`."""
    if not words or not others:
        return 0
    # Single words embed as one-sentence texts, and share rating's cache of sentence vectors
    vectors = np.concatenate(sentence_vectors(embedder, [*words, *others]))
    cosines = vectors[:len(words)] @ vectors[len(words):].T
    return int((cosines.max(axis=1) >= SIMILAR_WORD_MIN).sum())

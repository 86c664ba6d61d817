"""How likely a retrieved chunk is to hold the answer, on one scale whatever the method.

Raw retrieval scores do not say this: a hybrid score is a fused rank, so the best chunk of an
off-topic collection still scores near 1, and people read 0.96 as "96% sure". The relevance
here is a logistic regression from two absolute signals that every hit has, whatever method
found it: the dense cosine between question and chunk, and the share of the question's
content words (stemmed, as BM25 reads them) that the chunk contains, each word weighed by its
inverse document frequency in the collection (core.rag.bm25.Bm25Index.idf): a chunk holding
"optimizer" answers "Which optimizer was used to train …?" sooner than one holding "used" and
"training". Weighing (and "does", "did" read as the stop words they are) raised the AUC below
from 0.864 to 0.890 (bench/README.md, session 29).

Fitted by `python -m bench.calibrate_relevance` on ../shared/data/qa: SQuAD 2.0's first dev
article (39 passages, each a document) and the QASPER sample (10 papers, paragraphs joined into
one document each), chunked and embedded as the Studio does. Examples: the top 20 hybrid hits
of each answerable question with marked evidence (96 SQuAD, 43 QASPER: 2,780 chunks, 6.0%
supporting); a chunk "supports the answer" when it overlaps the gold paragraph and, for SQuAD,
contains a gold answer text. AUC 0.89, log loss 0.164. Adding the fused rank raised the AUC to
0.90, but a rank means something else for each method, so it is left out. Reliability of the
relevance as the Studio computes it (both fits below), predicted → actual share supporting:
<0.05 → 0.010, 0.05–0.1 → 0.073, 0.1–0.2 → 0.17, 0.2–0.35 → 0.27, 0.35–0.5 → 0.45, 0.5–0.7 →
0.42 (38 chunks).

A chunk's cosine is that of its whole text, so inside one paper, where every chunk shares the
words of the question and the title, it barely tells the chunk that answers from its
neighbours: for "What are the two pre-training tasks of BERT?" the chunk "we pre-train BERT
using two unsupervised tasks … Task #1: Masked LM" ranked 7th. So the candidates that this
first estimate ranks highest are rated again from their best sentence's cosine instead
(`sentence_relevance`): only those, since it means embedding each of their sentences at
question time (about 0.3 s on 2 cores the first time a chunk is met; core.rag.rating keeps
the vectors). Fitted the same way, on those candidates (AUC 0.87
among them); over the same data's top 20, hit@1 SQuAD 0.83 -> 0.84 and QASPER 0.16 -> 0.26,
hit@3 0.94 -> 0.95 and 0.35 -> 0.40; BERT's chunk 7th -> 1st.
"""

from __future__ import annotations

import math
from typing import Literal

# P(chunk supports the answer) = sigmoid(INTERCEPT + COSINE * cosine + COVERAGE * coverage)
INTERCEPT = -6.13
COSINE = 4.68
COVERAGE = 3.84

# Labels for people. Most questions have their answer in one chunk of the twenty candidates,
# so even the best chunk rarely passes an even chance: "strong" is about one in three or more
# (five times the base rate), "weak" under one in ten.
STRONG = 0.3
PARTIAL = 0.1

# Below this best relevance among the candidates the documents are taken not to answer the
# question. Swept over all questions of the same data, including SQuAD's 112 and QASPER's 6
# unanswerable ones (bench/results/calibrate-relevance-2026-12-04-idf.json): 0.05
# refused 6% of the unanswerable and none of the answerable questions (0.07: 9% and 1.4%;
# 0.10: 15% and 4%). SQuAD's unanswerable questions are written against the very passage they
# are not answered by, so retrieval evidence cannot tell them apart; this threshold catches
# questions about what the collection does not cover (an off-topic question scores under
# 0.01), and the model's own "The documents do not say" does the rest. Coverage here counts
# words as spelled, so a question in other words than its document's is given a second look
# before it is refused (core.rag.rating.rate_by_meaning).
ANSWERABLE_MIN = 0.05

# Candidates rated again from their best sentence (the first estimate's top ones). Among the
# top 20 on the data above, 10 to 20 gave the same hit@3; 12 keeps BERT's 7th in.
RESCORED = 12
# P(chunk supports the answer) = sigmoid(S_INTERCEPT + S_COSINE * best sentence's cosine
#                                        + S_COVERAGE * coverage)
S_INTERCEPT = -6.21
S_COSINE = 5.01
S_COVERAGE = 3.33

Label = Literal["strong", "partial", "weak"]


def relevance(cosine: float, coverage: float) -> float:
    return _logistic(INTERCEPT + COSINE * cosine + COVERAGE * coverage)


def sentence_relevance(sentence_cosine: float, coverage: float) -> float:
    return _logistic(S_INTERCEPT + S_COSINE * sentence_cosine + S_COVERAGE * coverage)


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def label(p: float) -> Label:
    return "strong" if p >= STRONG else "partial" if p >= PARTIAL else "weak"


def answerable(relevances: list[float]) -> bool:
    return bool(relevances) and max(relevances) >= ANSWERABLE_MIN

"""How likely a retrieved chunk is to hold the answer, on one scale whatever the method.

Raw retrieval scores do not say this: a hybrid score is a fused rank, so the best chunk of an
off-topic collection still scores near 1, and people read 0.96 as "96% sure". The relevance
here is a logistic regression from two absolute signals that every hit has, whatever method
found it: the dense cosine between question and chunk, and the share of the question's
content words (stemmed, as BM25 reads them) that the chunk contains.

Fitted by `python -m bench.calibrate_relevance` on ../shared/data/qa: SQuAD 2.0's first dev
article (39 passages, each a document) and the QASPER sample (10 papers, paragraphs joined into
one document each), chunked and embedded as the Studio does (500/50, chunking v3: the title
not embedded). Examples: the top 20 hybrid hits of each answerable question with marked
evidence (96 SQuAD, 43 QASPER: 2,780 chunks, 6.1% supporting); a chunk "supports the answer"
when it overlaps the gold paragraph and, for SQuAD, contains a gold answer text. AUC 0.87, log
loss 0.172 (with v2's embedded titles: 0.85, 0.180); reliability on the same data (predicted →
actual share supporting): <0.05 → 0.015, 0.05–0.1 → 0.07, 0.1–0.2 → 0.14, 0.2–0.35 → 0.29,
0.35–0.5 → 0.45, 0.5–0.7 → 0.37 (27 chunks). Adding the fused rank raised the AUC to 0.90,
but a rank means something else for each method, so it is left out.
"""

from __future__ import annotations

import math
from typing import Literal

# P(chunk supports the answer) = sigmoid(INTERCEPT + COSINE * cosine + COVERAGE * coverage)
INTERCEPT = -6.33
COSINE = 4.28
COVERAGE = 4.07

# Labels for people. Most questions have their answer in one chunk of the twenty candidates,
# so even the best chunk rarely passes an even chance: "strong" is about one in three or more
# (five times the base rate), "weak" under one in ten.
STRONG = 0.3
PARTIAL = 0.1

# Below this best relevance among the top 5 chunks the documents are taken not to answer the
# question. Swept over all questions of the same data, including SQuAD's 112 and QASPER's 6
# unanswerable ones: 0.05 refused 14% of the unanswerable and 7% of the answerable questions
# (0.07: 18% and 11%; 0.10: 26% and 21%). SQuAD's unanswerable questions are written against
# the very passage they are not answered by, so retrieval evidence cannot tell them apart; this
# threshold catches questions about what the collection does not cover (an off-topic question
# scores under 0.01), and the model's own "The documents do not say" does the rest.
ANSWERABLE_MIN = 0.05

Label = Literal["strong", "partial", "weak"]


def relevance(cosine: float, coverage: float) -> float:
    z = INTERCEPT + COSINE * cosine + COVERAGE * coverage
    return 1.0 / (1.0 + math.exp(-z))


def label(p: float) -> Label:
    return "strong" if p >= STRONG else "partial" if p >= PARTIAL else "weak"


def answerable(relevances: list[float]) -> bool:
    return bool(relevances) and max(relevances) >= ANSWERABLE_MIN

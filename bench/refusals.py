"""Refusals without asking the model (issue 13, item 4): how often each set's questions are
refused by the calibrated relevance of the question's words as spelled, and as the Studio
refuses them, with the second look that reads question words by meaning
(core.rag.rating.rate_by_meaning), at the default k; and how many of those answered would carry
the note that every passage is a weak match (core.rag.answer_notes.WEAK_NOTE).

Sets:
- plain: questions in people's words over the two Square One forms of ../shared/data/documents
  (PLAIN, answered by the forms; the last 14 were written down before any was run), and
  questions the forms do not cover (OFF_TOPIC);
- SQuAD 2.0's first dev article and the QASPER sample (bench/qa.py), each its own collection:
  answerable and unanswerable questions, and each set's questions asked of the other's
  documents (same genre, off-topic).

The bar: refuse what the documents do not cover, and at most 15% of what they answer (issue
13's false-refusal bound). Prints a table and JSON.
"""

from __future__ import annotations

import json
import os
import tempfile

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-refusals-")

from bench.qa import QA, qasper_set, squad_set, store_documents
from core.rag import rating, relevance, store
from core.rag.embeddings import get_embedder
from core.rag.ingest import ingest_files
from core.rag.retrieval import search, weakly_matched
from core.settings import load_settings

FORMS = ("square-one_offer-letter.docx", "square-one_statement-of-work.docx")
PLAIN = (
    "What is the salary?", "Who are the two parties?", "Who are the parties?",
    "How much is the bonus?", "When does the job start?", "Who is the supervisor?",
    "What is the hourly rate?", "How much does the contractor charge?", "Where is the office?",
    "What is the job title?", "How many shares are offered?", "When must the offer be accepted?",
    # written down before any was run
    "What work will the contractor do?", "How much is the contractor paid?",
    "How often is the client invoiced?", "How will payment be made?",
    "Can the contractor hire subcontractors?", "Who is the client?", "When does the work begin?",
    "How many hours of work are covered?", "Who is being hired?",
    "What company is making the offer?", "Is the position full time?",
    "Who should questions be sent to?", "What stock options come with the job?",
    "What is the deadline to sign?",
)
OFF_TOPIC = (
    "What is the capital of France?", "Who won the 2018 World Cup?", "How do I bake bread?",
    "What is the boiling point of water?", "Who wrote Hamlet?", "How does photosynthesis work?",
    "What is the best programming language?", "How tall is Mount Everest?",
    "What is the weather tomorrow?", "How do vaccines work?", "Who painted the Mona Lisa?",
    "What is the speed of light?", "How do I change a tire?", "What is the population of Tokyo?",
)


def refused(settings, pairs: list[tuple[str, str]]) -> dict:
    """How many of the (collection, question) pairs each test refuses."""
    first = second = weak = 0
    for collection, question in pairs:
        found = search(settings, collection, question)
        hits = found.hits
        first += not relevance.answerable([rating.estimate(h, h.coverage) for h in hits])
        # a question about a document itself is answered from its opening however weakly it
        # matches (core.rag.front_matter), as RagTurn does
        answered = found.placed or relevance.answerable([h.relevance for h in hits])
        second += not answered
        # answered, with the Chat page's note that every passage is a weak match (RagTurn)
        weak += bool(answered and not found.placed and weakly_matched(hits))
    return {"questions": len(pairs), "relevance_alone": first, "with_meaning": second,
            "answered_weak_only": weak}


def main() -> None:
    settings = load_settings()
    forms = ingest_files(settings, [QA.parent / "documents" / name for name in FORMS], "forms")
    assert all(r.status == "ok" for r in forms), forms
    sets = {qa.name: qa for qa in (squad_set(), qasper_set())}
    chroma = store.client(settings)
    for qa in sets.values():
        store_documents(chroma, get_embedder(settings), qa.name, qa.documents)
    asked = [(qa.name, q) for qa in sets.values() for _, q in qa.questions]
    rows = {name: refused(settings, pairs) for name, pairs in (
        ("plain, answered by the forms", [("forms", q) for q in PLAIN]),
        ("plain, off-topic", [("forms", q) for q in OFF_TOPIC]),
        ("SQuAD + QASPER answerable", [(c, q.text) for c, q in asked if q.answerable]),
        ("SQuAD + QASPER unanswerable", [(c, q.text) for c, q in asked if not q.answerable]),
        ("asked of the other set", [(other, q.text) for c, q in asked
                                    for other in sets if other != c]))}
    print(f"\n{'questions':<32}{'n':>5}{'refused: relevance alone':>26}{'with meaning':>14}"
          f"{'answered, all weak':>20}")
    for name, r in rows.items():
        print(f"{name:<32}{r['questions']:>5}{r['relevance_alone']:>26}{r['with_meaning']:>14}"
              f"{r['answered_weak_only']:>20}")
    print(json.dumps({"similar_word_min": rating.SIMILAR_WORD_MIN,
                      "answerable_min": relevance.ANSWERABLE_MIN, "refused": rows}))


if __name__ == "__main__":
    main()

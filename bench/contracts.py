"""Who the parties to a contract are (issue 13): real contracts, each uploaded on its own as a
user would, asked "Who are the parties to this agreement?"; the Studio's defaults against the
reference set-up and the same model with no retrieval (bench/answers.py's configurations), in
one run.

Data: CUAD v1 in ../shared/data/classification: the full texts of every n-th of its 510
contracts (sorted by file name) and, as gold, the excerpts its annotators marked "Parties",
less defined terms (in quotes, '"Provider"', or a role alone: "Supplier", "Party A"),
placeholders ("<<enter Company Name>>") and sentences (over MAX_NAME_WORDS words). The
Studio's collection is made as the app makes it (the text as a .txt file through Tika, its
chunker); the reference's as bench/answers.py makes it.

Measures: a party named (at least one gold name has all its words in the answer, but for a
company's form: "Pfizer" names "Pfizer Inc."); gold names
named (share of the gold names so found: a lower bound, as a party's aliases count apart);
refusals; answers with a valid [n]; seconds per answer and median time to first token. Prints a
table and JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-contracts-")

from bench.answers import MAX_NEW_TOKENS, RUNNERS, reference_chunks
from bench.qa import QA, Document, store_documents
from core.rag import store
from core.rag.citations import is_refusal
from core.rag.embeddings import get_embedder
from core.rag.evaluate import words
from core.rag.ingest import ingest_files
from core.rag.llm import get_engine
from core.settings import load_settings

CUAD = QA.parent / "classification"
QUESTION = "Who are the parties to this agreement?"
CONFIGS = ("studio defaults", "reference", "no retrieval")
MAX_NAME_WORDS = 8
# Words that say what a party is, not who: a gold name of these alone is a defined term, and
# a company's form is left out when matching ("Pfizer" names "Pfizer Inc.")
ROLES = frozenset("company supplier sponsor corporation distributor party parties agent lead "
                  "customer vendor licensor licensee provider recipient client contractor "
                  "employer employee buyer seller franchisee franchisor manufacturer partner "
                  "a b".split())
FORMS = frozenset("inc llc ltd corp corporation co na lp llp plc gmbh ag sa bv limited of".split())


def name_words(name: str) -> set[str]:
    return set(words(name)) - FORMS


def contracts(count: int) -> list[tuple[str, str, list[str]]]:
    """(file stem, text, gold party names) of every n-th contract that has some."""
    csv.field_size_limit(sys.maxsize)
    with open(CUAD / "cuad_contract_types" / "cuad_contract_types.csv", newline="") as f:
        texts = {row["file"].rsplit(".", 1)[0]: row["text"] for row in csv.DictReader(f)}
    names: dict[str, list[str]] = {}
    with open(CUAD / "cuad_clauses" / "cuad_clause_excerpts.csv", newline="") as f:
        for row in csv.DictReader(f):
            excerpt = row["text"].strip()
            if (row["clause_type"] == "Parties" and excerpt[:1] not in "\"“'"
                    and "<" not in excerpt and 0 < len(excerpt.split()) <= MAX_NAME_WORDS
                    and not set(words(excerpt)) <= ROLES):
                names.setdefault(row["contract_file"].rsplit(".", 1)[0], []).append(excerpt)
    pool = sorted(stem for stem in texts if names.get(stem))
    step = max(1, len(pool) // count)
    return [(stem, texts[stem], sorted(set(names[stem]))) for stem in pool[::step][:count]]


def named(answer: str, golds: list[str]) -> list[str]:
    said = set(words(answer))
    return [g for g in golds if name_words(g) and name_words(g) <= said]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contracts", type=int, default=20)
    args = parser.parse_args()
    settings = load_settings()
    chroma = store.client(settings)
    engine = get_engine(settings)
    embedder = get_embedder(settings)
    folder = Path(tempfile.mkdtemp(prefix="bench-contracts-files-"))
    started = time.perf_counter()
    rows: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    chosen = contracts(args.contracts)
    for i, (stem, text, golds) in enumerate(chosen, 1):
        name = f"contract-{i:03d}"
        path = folder / f"{stem[:80]}.txt"
        path.write_text(text)
        [result] = ingest_files(settings, [path], name)
        assert result.status == "ok", result
        store_documents(chroma, embedder, f"{name}-ref",
                        [Document(stem, stem, [p for p in text.split("\n\n") if p.strip()])],
                        reference_chunks)
        for config in CONFIGS:
            engine.llm.reset()  # no reuse of the previous prompt's cache across configurations
            got = RUNNERS[config](settings, chroma, engine, name, QUESTION)
            found = named(got["text"], golds)
            got.update(contract=stem, golds=golds, named=found, refused=is_refusal(got["text"]))
            rows[config].append(got)
            print(f"  {i}/{len(chosen)} {config}: {got['seconds']:.0f} s, named {len(found)} of "
                  f"{len(golds)}: {got['text'][:100]!r}", flush=True)
    results = {c: {**summarise(r), "rows": r} for c, r in rows.items()}
    print(f"\n{engine.name}, {len(chosen)} CUAD contracts, {QUESTION!r}")
    print(f"{'configuration':<17}{'a party':>9}{'names':>7}{'refused':>9}{'[n] ok':>8}"
          f"{'s/answer':>10}{'TTFT':>7}")
    for config, r in results.items():
        print(f"{config:<17}{r['a_party_named']:>9.2f}{r['gold_names_named']:>7.2f}"
              f"{r['refused']:>9.2f}{r['valid_citation']:>8.2f}{r['seconds_per_answer']:>10.1f}"
              f"{r['median_ttft_s']:>7.2f}")
    print(json.dumps({"engine": engine.name, "question": QUESTION, "contracts": len(chosen),
                      "max_new_tokens": MAX_NEW_TOKENS,
                      "minutes": round((time.perf_counter() - started) / 60, 1),
                      "results": results}))


def summarise(rows: list[dict]) -> dict:
    answered = [r for r in rows if not r["refused"]]
    return {
        "a_party_named": round(statistics.mean(bool(r["named"]) for r in rows), 3),
        "gold_names_named": round(statistics.mean(len(r["named"]) / len(r["golds"])
                                                  for r in rows), 3),
        "refused": round(statistics.mean(r["refused"] for r in rows), 3),
        "valid_citation": round(sum(r["valid_citation"] for r in answered) / len(answered), 3)
        if answered else 0.0,
        "seconds_per_answer": round(statistics.mean(r["seconds"] for r in rows), 2),
        "median_ttft_s": round(statistics.median(r["ttft_s"] or 0.0 for r in rows), 3),
    }


if __name__ == "__main__":
    main()

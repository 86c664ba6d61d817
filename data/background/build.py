"""Writes documents.jsonl: documents of kinds other than a user's, which an adapter's profile
compares a document with (core.lora.familiarity). Run from the project folder with the shared
data beside it: `.venv/bin/python data/background/build.py`. The Wikipedia passages are the
shipped SQuAD sample's (data/samples/squad), read from there."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared" / "data"
SAMPLE = HERE.parent / "samples" / "cuad_contract_types_sample.csv"
CHARS = 2000  # the embedding model reads the first 256 tokens of a document
PER_TYPE = 2


def contracts() -> list[str]:
    cuad = pd.read_csv(SHARED / "classification" / "cuad_contract_types" /
                       "cuad_contract_types.csv").dropna(subset=["text"])
    shipped = set(pd.read_csv(SAMPLE)["source_file"])
    cuad = cuad[~cuad["file"].isin(shipped)].sort_values("file")
    return [text[:CHARS] for text in cuad.groupby("contract_type").head(PER_TYPE)["text"]]


def paper_parts() -> list[str]:
    papers = json.loads((SHARED / "qa" / "qasper_sample" /
                         "qasper_train_first10_papers.json").read_text())
    out = []
    for paper in papers:
        out.append(f"{paper['title']}\n\n{paper['abstract']}"[:CHARS])
        sections = paper["full_text"]
        out += ["\n\n".join([name, *paragraphs])[:CHARS]
                for name, paragraphs in zip(sections["section_name"], sections["paragraphs"])
                if paragraphs]
    return out


def main() -> None:
    rows = ([{"kind": "contracts", "text": t} for t in contracts()]
            + [{"kind": "research papers", "text": t} for t in paper_parts()])
    with open(HERE / "documents.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} documents")


if __name__ == "__main__":
    main()

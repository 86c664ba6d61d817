"""Telling documents unlike an adapter's training documents: the Studio's check (nearest
training document by embedding, and, against the documents of other kinds it ships, how far
ahead of them; core.lora.familiarity) against the floor alone (the check before the documents
of other kinds) and, for a trained adapter, what a user has without either: the adapter's own
confidence (the Classify page's "none of these" threshold on the top label's probability).

The profile: --adapter-dir, a trained adapter's folder (its dataset and split are rebuilt from
its metadata), or --data, a dataset split as training splits it (no adapter, so no
confidence); the profile is built as training builds it. Documents from ../shared/data, none
of them among the shipped documents of other kinds: unseen documents of the profile's own kind
(--kind: CUAD contracts of the adapter's types, or BBC articles not in its dataset), CUAD
contracts of other types, CUAD clauses, BBC articles, papers (the shared PDFs as pypdf reads
them, and SC-LoRA's text) and Wikipedia passages (SQuAD's, past the 12 shipped). For each
signal: ROC AUC between the unseen documents of its kind and the off-topic ones; the share of
each set flagged. Prints a table, then JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.qa import QA
from bench.train import BBC
from core.lora import familiarity
from core.lora.adapters import load_classifier, read
from core.lora.config import TrainConfig
from core.lora.evaluate import RememberingEmbedder
from core.lora.trainer import prepare_data
from core.rag.embeddings import default_embedder
from core.registry import linked_models_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CUAD = SHARED / "classification" / "cuad_contract_types" / "cuad_contract_types.csv"
CLAUSES = SHARED / "classification" / "cuad_clauses" / "cuad_clause_excerpts.csv"
OPENING = 200  # characters that identify a document
SHIPPED_PASSAGES = 12  # the SQuAD sample's passages, which the Studio compares with


def papers() -> list[str]:
    from pypdf import PdfReader

    pdfs = sorted((SHARED / "papers").glob("*.pdf")) + [SHARED / "documents" /
                                                        "deep-rules_manuscript.pdf"]
    texts = ["\n".join(page.extract_text() or "" for page in PdfReader(pdf).pages[:2])
             for pdf in pdfs]
    return texts + [(SHARED / "papers" / "2505.23724v1.txt").read_text(encoding="utf-8")]


def document_sets(kind: str, labels: list[str], seen: set[str], per_set: int
                  ) -> dict[str, list[str]]:
    """The documents to check, by set, the first being the unseen ones of the profile's kind."""
    known = {text[:OPENING] for text in seen} | {
        text[:OPENING] for _, text in familiarity.background()}

    def unknown(texts: list[str]) -> list[str]:
        return [t for t in texts if isinstance(t, str) and t[:OPENING] not in known][:per_set]

    cuad = pd.read_csv(CUAD).dropna(subset=["text"])
    news = unknown(pd.read_csv(BBC)["Text"].drop_duplicates().tolist())
    squad = json.loads((QA / "squad" / "dev-v2.0.json").read_text())
    wikipedia = [p["context"] for article in squad["data"] for p in article["paragraphs"]]
    sets = {"unseen news articles (BBC)": news} if kind == "news" else {
        "unseen contracts, its types": unknown(cuad[cuad.contract_type.isin(labels)]["text"]
                                               .tolist())}
    sets |= {
        "contracts of other types" if kind == "contracts" else "contracts (CUAD)":
            unknown(cuad[~cuad.contract_type.isin(labels)]["text"].tolist()),
        "contract clauses (CUAD)": unknown(pd.read_csv(CLAUSES)["text"].drop_duplicates()
                                           .sample(frac=1, random_state=0).tolist()),
        "papers (PDFs, pypdf)": papers(),
        "Wikipedia passages (SQuAD)": wikipedia[SHIPPED_PASSAGES:][:per_set],
    }
    if kind != "news":
        sets["news articles (BBC)"] = news
    return sets


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    diff = positive[:, None] - negative[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--adapter-dir", type=Path)
    source.add_argument("--data", type=Path, help="a dataset (CSV), split as training splits it")
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="label")
    parser.add_argument("--kind", choices=("contracts", "news"), default="contracts",
                        help="what the profile's own unseen documents are")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models",
                        help="where the adapter's base model and the embedding model are")
    parser.add_argument("--rows", type=int,
                        help="with --data: this many of its rows (shuffled, seed 0), as a user "
                             "with a small dataset has")
    parser.add_argument("--per-set", type=int, default=100)
    args = parser.parse_args()
    info = read(args.adapter_dir) if args.adapter_dir else None
    data = args.data
    if data and args.rows:
        data = Path(tempfile.mkdtemp(prefix="bench-familiarity-")) / f"{data.stem}-{args.rows}.csv"
        rows = pd.read_csv(args.data).sample(frac=1, random_state=0).head(args.rows)
        # a label with too few rows to split three ways is left out, as a user would have to
        counts = rows[args.label_col].value_counts()
        rows[rows[args.label_col].isin(counts[counts >= 10].index)].to_csv(data, index=False)
    config = TrainConfig(**info.meta.config) if info else TrainConfig(
        data=str(data), text_col=args.text_col, label_col=args.label_col)
    parts, labels = prepare_data(config)
    embedder = RememberingEmbedder(default_embedder(args.models_dir))
    started = time.perf_counter()
    held_out = parts.validation.texts + parts.test.texts
    profile = familiarity.of_split(parts.train.texts, held_out, embedder.embed,
                                   embedder.model_name)
    profile_seconds = time.perf_counter() - started
    floor_alone = familiarity.build(embedder.embed(parts.train.texts), embedder.embed(held_out),
                                    embedder.model_name)
    seen = set(parts.train.texts + parts.validation.texts + parts.test.texts)
    sets = document_sets(args.kind, labels, seen, args.per_set)
    classifier = None
    if info and args.adapter_dir:
        # a library of its own holding the adapter, beside links to the installed models
        models = linked_models_dir(Path(tempfile.mkdtemp(prefix="bench-familiarity-")) /
                                   "models", args.models_dir)
        shutil.copytree(args.adapter_dir, models / "adapters" / info.name)
        classifier = load_classifier(models, info.name)
    found, closest, lead, confidence = {}, {}, {}, {}
    for name, texts in sets.items():
        found[name] = profile.check(texts, embedder.embed)
        closest[name] = np.array([x.closest for x in found[name]])
        lead[name] = np.array([x.closest - (x.other if x.other is not None else -1.0)
                               for x in found[name]])
        if classifier is not None:
            confidence[name] = np.array([max(p.scores.values())
                                         for p in classifier.score_many(texts)])
    inside, off = next(iter(sets)), list(sets)[1:]
    if args.kind == "contracts":
        off.remove("contracts of other types")  # contracts: the adapter's own kind of document
    flagged_inside = float(np.mean([not x.familiar for x in found[inside]]))
    # the confidence threshold that flags as many unseen documents of its kind as the check
    threshold = (float(np.quantile(confidence[inside], flagged_inside))
                 if confidence and flagged_inside else 0.0)
    rows = [{"set": name, "documents": len(sets[name]),
             "flagged_by_floor_alone": float(np.mean(closest[name] < floor_alone.floor)),
             "flagged_by_check": float(np.mean([not x.familiar for x in found[name]])),
             "flagged_by_confidence": (float(np.mean(confidence[name] < threshold))
                                       if confidence else None),
             "median_similarity": float(np.median(closest[name])),
             "median_lead": float(np.median(lead[name]))}
            for name in sets]
    off_closest = np.concatenate([closest[n] for n in off])
    summary = {"profile": (info.meta.name or info.name) if info else Path(config.data).name,
               "labels": labels, "training_documents": len(parts.train.texts),
               "floor": profile.floor, "lead_floor": profile.lead_floor,
               "compared_kinds": sorted(set(profile.other_kinds)),
               "embedder": f"{profile.embedder} ({getattr(embedder.embedder, 'engine', '')})",
               "profile_seconds": round(profile_seconds, 2), "confidence_threshold": threshold,
               "auc_similarity": auc(closest[inside], off_closest),
               "auc_lead": auc(lead[inside], np.concatenate([lead[n] for n in off])),
               "auc_confidence": (auc(confidence[inside],
                                      np.concatenate([confidence[n] for n in off]))
                                  if confidence else None),
               "rows": rows}
    print(f"{summary['profile']}: {summary['training_documents']} training documents, floor "
          f"{profile.floor:.3f}, lead over {', '.join(summary['compared_kinds']) or 'none'} "
          f"{profile.lead_floor if profile.lead_floor is not None else '-'}; profile "
          f"{profile_seconds:.1f} s")
    print(f"{'set':<32}{'docs':>6}{'floor alone':>13}{'check':>8}{'confidence':>12}"
          f"{'median sim':>12}{'median lead':>13}")
    for r in rows:
        conf = f"{r['flagged_by_confidence']:.0%}" if r["flagged_by_confidence"] is not None \
            else "-"
        print(f"{r['set']:<32}{r['documents']:>6}{r['flagged_by_floor_alone']:>13.0%}"
              f"{r['flagged_by_check']:>8.0%}{conf:>12}{r['median_similarity']:>12.3f}"
              f"{r['median_lead']:>13.3f}")
    print(f"ROC AUC, unseen documents of its kind against the off-topic ones: similarity "
          f"{summary['auc_similarity']:.3f}, lead {summary['auc_lead']:.3f}"
          + (f", confidence {summary['auc_confidence']:.3f}" if confidence else ""))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""Telling documents unlike an adapter's training documents: the Studio's check (nearest
training document by embedding, core.lora.familiarity) against what a user has without it, the
adapter's own confidence (the Classify page's "none of these" threshold on the top label's
probability).

The adapter: --adapter-dir, a trained adapter's folder (its dataset and split are rebuilt from
its metadata; the profile is built as training builds it). Documents from ../shared/data:
unseen contracts of the adapter's own types and of other types (CUAD), BBC News articles and
QASPER papers (their paragraphs joined). For each signal: ROC AUC between the unseen contracts
of the adapter's types and the off-topic documents (news, papers); at the Studio's floor, the
share of each set flagged; and the share of off-topic documents that a confidence threshold
flags when set to flag as many unseen contracts as the check does. Prints a table, then JSON.
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
CUAD = ROOT.parent / "shared" / "data" / "classification" / "cuad_contract_types" / \
    "cuad_contract_types.csv"
OPENING = 200  # characters that identify a contract


def document_sets(labels: list[str], seen: set[str], per_set: int) -> dict[str, list[str]]:
    cuad = pd.read_csv(CUAD).dropna(subset=["text"])
    # by their openings: a dataset may hold a contract cut short (the shipped sample's are)
    cuad = cuad[~cuad["text"].str[:OPENING].isin({text[:OPENING] for text in seen})]
    papers = json.loads((QA / "qasper_sample" / "qasper_train_first10_papers.json").read_text())
    return {
        "unseen contracts, its types": cuad[cuad.contract_type.isin(labels)]["text"]
        .head(per_set).tolist(),
        "contracts of other types": cuad[~cuad.contract_type.isin(labels)]["text"]
        .head(per_set).tolist(),
        "news articles (BBC)": pd.read_csv(BBC)["Text"].head(per_set).tolist(),
        "papers (QASPER)": ["\n\n".join([p["title"], p["abstract"]]
                                        + [x for section in p["full_text"]["paragraphs"]
                                           for x in section]) for p in papers],
    }


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    diff = positive[:, None] - negative[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter-dir", required=True, type=Path)
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models",
                        help="where the adapter's base model and the embedding model are")
    parser.add_argument("--per-set", type=int, default=100)
    args = parser.parse_args()
    info = read(args.adapter_dir)
    parts, labels = prepare_data(TrainConfig(**info.meta.config))
    embedder = RememberingEmbedder(default_embedder(args.models_dir))
    started = time.perf_counter()
    profile = familiarity.build(embedder.embed(parts.train.texts),
                                embedder.embed(parts.validation.texts + parts.test.texts),
                                embedder.model_name)
    profile_seconds = time.perf_counter() - started
    seen = set(parts.train.texts + parts.validation.texts + parts.test.texts)
    sets = document_sets(labels, seen, args.per_set)
    # a library of its own holding the adapter, beside links to the installed models
    models = linked_models_dir(Path(tempfile.mkdtemp(prefix="bench-familiarity-")) / "models",
                               args.models_dir)
    shutil.copytree(args.adapter_dir, models / "adapters" / info.name)
    classifier = load_classifier(models, info.name)
    likeness, confidence, seconds = {}, {}, {}
    for name, texts in sets.items():
        started = time.perf_counter()
        likeness[name] = np.array([x.closest for x in profile.check(texts, embedder.embed)])
        seconds[name] = {"check": time.perf_counter() - started}
        started = time.perf_counter()
        confidence[name] = np.array([max(p.scores.values()) for p in classifier.score_many(texts)])
        seconds[name]["classify"] = time.perf_counter() - started
    inside = "unseen contracts, its types"
    off = ["news articles (BBC)", "papers (QASPER)"]
    off_likeness = np.concatenate([likeness[n] for n in off])
    off_confidence = np.concatenate([confidence[n] for n in off])
    flagged_inside = float(np.mean(likeness[inside] < profile.floor))
    # the confidence threshold that flags as many unseen contracts of its types as the check
    threshold = float(np.quantile(confidence[inside], flagged_inside)) if flagged_inside else 0.0
    rows = [{"set": name, "documents": len(sets[name]),
             "flagged_by_check": float(np.mean(likeness[name] < profile.floor)),
             "flagged_by_confidence": float(np.mean(confidence[name] < threshold)),
             "median_similarity": float(np.median(likeness[name])),
             "median_confidence": float(np.median(confidence[name])),
             "check_s_per_doc": seconds[name]["check"] / len(sets[name]),
             "classify_s_per_doc": seconds[name]["classify"] / len(sets[name])}
            for name in sets]
    summary = {"adapter": info.meta.name or info.name, "base": info.base, "labels": labels,
               "training_documents": len(parts.train.texts), "floor": profile.floor,
               "embedder": f"{profile.embedder} ({getattr(embedder.embedder, 'engine', '')})",
               "profile_seconds": round(profile_seconds, 2), "confidence_threshold": threshold,
               "auc_check": auc(likeness[inside], off_likeness),
               "auc_confidence": auc(confidence[inside], off_confidence), "rows": rows}
    print(f"adapter {summary['adapter']} ({Path(info.base).name}), {summary['training_documents']} "
          f"training documents, floor {profile.floor:.3f}; confidence threshold at the same "
          f"share of unseen contracts flagged: {threshold:.1%}")
    print(f"{'set':<30}{'docs':>6}{'check':>8}{'confidence':>12}{'median sim':>12}"
          f"{'median conf':>13}")
    for r in rows:
        print(f"{r['set']:<30}{r['documents']:>6}{r['flagged_by_check']:>8.0%}"
              f"{r['flagged_by_confidence']:>12.0%}{r['median_similarity']:>12.3f}"
              f"{r['median_confidence']:>13.1%}")
    print(f"ROC AUC, unseen contracts of its types against news and papers: check "
          f"{summary['auc_check']:.3f}, confidence {summary['auc_confidence']:.3f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

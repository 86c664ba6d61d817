"""Does a LoRA adapter earn its keep? For each dataset, one stratified held-out split, and on its
test part: the adapter (a training preset, label scoring), the base model alone (zero-shot, the
same label scoring), sentence embeddings + logistic regression (the baseline the trainer's own
evaluation uses) and TF-IDF + LinearSVC. Accuracy, macro-F1 and minutes for each; optionally a
learning curve (every method trained on 50/100/200/... examples of the same training part).
Every run also gives the baselines' learning curve at 50/100/200/all (the one the wizard's
Evaluate step draws; seconds), and `--baselines-only` gives just that, without training.

Datasets (`--datasets`, comma-separated):
  sample   data/samples/cuad_contract_types_sample.csv — 60 contracts, 5 types (shipped)
  clauses  300 CUAD clause excerpts, 10 clause types × 30, single-label only (built here)
  bbc      BBC News, 1,490 articles, 5 topics (`--quick`: 300)
  cuad     CUAD contract types, 510 long contracts, 25 types (cut to the preset's max length;
           `--quick`: the 12 types with 20 or more contracts)
`--quick` takes a stratified subset of BBC (300) and the common CUAD types. Prints a table, then JSON.
Every method trains on the same training part only; the validation part is not used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHARED = Path(os.environ.get("STUDIO_SHARED_DATA", ROOT.parent / "shared" / "data")) / "classification"
if not SHARED.is_dir():  # a git worktree beside the main checkout
    SHARED = Path("/work/shared/data/classification")
QUICK_ROWS = {"bbc": 300}


def load_dataset(name: str, quick: bool, seed: int):
    """(LabelledData, a note on where it came from)."""
    import pandas as pd

    from core.lora.data import clean, from_table
    from core.samples import SAMPLE_DATASET

    if name == "sample":
        frame, text, label = pd.read_csv(SAMPLE_DATASET), "text", "label"
    elif name == "clauses":
        frame, text, label = clauses_frame(seed), "text", "label"
    elif name == "bbc":
        frame = pd.read_csv(SHARED / "bbc_news" / "bbc_news_train_5class.csv")
        text, label = "Text", "Category"
    elif name == "cuad":
        frame = pd.read_csv(SHARED / "cuad_contract_types" / "cuad_contract_types.csv")
        text, label = "text", "contract_type"
    else:
        raise SystemExit(f"unknown dataset {name!r}")
    data, _ = clean(from_table(frame, text, label, name))
    counts = pd.Series(data.labels).value_counts()
    keep = set(counts[counts >= 5].index)  # too rare to appear in train and test
    data = data.subset([i for i, y in enumerate(data.labels) if y in keep])
    if quick and name == "cuad":  # too few of the rarest types for a subset: the common ones
        keep = set(counts[counts >= 20].index)
        data = data.subset([i for i, y in enumerate(data.labels) if y in keep])
    elif quick and name in QUICK_ROWS and len(data.texts) > QUICK_ROWS[name]:
        from sklearn.model_selection import train_test_split

        picked, _ = train_test_split(list(range(len(data.texts))),
                                     train_size=QUICK_ROWS[name], random_state=seed,
                                     stratify=data.labels)
        data = data.subset(sorted(picked))
    return data


def clauses_frame(seed: int, types: int = 10, per_type: int = 30, min_chars: int = 100):
    """CUAD clause excerpts that carry one clause type only, at least `min_chars` long (short
    ones are names and dates); the `types` most frequent types, `per_type` of each."""
    import pandas as pd

    frame = pd.read_csv(SHARED / "cuad_clauses" / "cuad_clause_excerpts.csv")
    frame["text"] = frame["text"].astype(str).str.strip()
    kinds = frame.groupby("text")["clause_type"].nunique()
    frame = frame[frame["text"].map(kinds) == 1].drop_duplicates("text")
    frame = frame[frame["text"].str.len() >= min_chars]
    top = frame["clause_type"].value_counts().index[:types]
    frame = frame[frame["clause_type"].isin(top)]
    picked = frame.groupby("clause_type").sample(per_type, random_state=seed)
    return picked.rename(columns={"clause_type": "label"})[["text", "label"]]


def train_adapter(args, parts, categories, work: Path):
    """Train with the preset on parts.train; (classifier, zero-shot classifier, minutes, steps,
    truncated share, config)."""
    import torch

    from core.lora.config import from_preset
    from core.lora.prompts import count_truncated
    from core.lora.trainer import build, trained_classifiers

    # the preset's whole budget, never validated: Balanced's early stopping is off here
    overrides = dict(name="bench", base=args.base, eval_steps=0, save_steps=0,
                     early_stopping_patience=0, seed=args.seed)
    overrides.update(json.loads(args.set or "{}"))
    config = from_preset(args.preset, **overrides)
    torch.manual_seed(config.seed)
    session = build(config, work, ROOT / "models", data=(parts, categories))
    started = time.perf_counter()
    session.trainer.train()
    minutes = (time.perf_counter() - started) / 60
    truncated = count_truncated(session.tokenizer, parts.test.texts, categories,
                                config.max_length) / len(parts.test.texts)
    classifier, zero_shot = trained_classifiers(session.model, session.tokenizer, categories,
                                                config, ROOT / "models")
    return classifier, zero_shot, minutes, session.trainer.state.global_step, truncated, config


def run_dataset(args, name: str, embedder) -> dict:
    from core.lora.data import split, subsample
    from core.lora.evaluate import (
        classify_split,
        curve_sizes,
        embedding_baseline,
        learning_curve,
        tfidf_baseline,
    )

    data = load_dataset(name, args.quick, args.seed)
    # the split keeps at least one example of each label for validation (unused here): a 10%
    # share leaves the test part its full 20% on small sets too
    parts = split(data, (0.7, 0.1, 0.2), args.seed)
    assert len(parts.test.texts) >= 0.2 * len(data.texts) - 1
    categories = data.label_set
    out = {"dataset": name, "rows": len(data.texts), "labels": len(categories),
           "train": len(parts.train.texts), "test": len(parts.test.texts), "curve": []}
    if embedder is not None:
        out["baselines_curve"] = learning_curve(parts.train, parts.test, embedder, seed=args.seed)
        print(f"  {name} baselines (MiniLM + LogReg / TF-IDF + LinearSVC) by training examples: "
              + ", ".join(f"{r['train_examples']}: {r['baseline']:.1%} / {r['tfidf']:.1%}"
                          for r in out["baselines_curve"]), file=sys.stderr, flush=True)
    if args.baselines_only:
        return out
    sizes = curve_sizes(args.curve, len(parts.train.texts))
    for n in sizes:
        train = subsample(parts.train, n, args.seed)
        sub = type(parts)(train, parts.validation, parts.test, parts.ratios, parts.seed)
        row = {"train_examples": len(train.texts)}
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as work:
            classifier, zero_shot, minutes, steps, truncated, config = train_adapter(
                args, sub, categories, Path(work))
            row["adapter"] = classify_split(classifier, parts.test, True)
            row["adapter"]["train_minutes"] = round(minutes, 2)
            row["adapter"]["steps"] = steps
            row["test_truncated_share"] = round(truncated, 3)
            if n == sizes[-1]:
                row["zero_shot"] = classify_split(zero_shot, parts.test, False)
        if embedder is not None:
            row["embedding"] = embedding_baseline(train, parts.test, embedder)
            row["tfidf_svc"] = tfidf_baseline(train, parts.test)
        for result in row.values():
            if isinstance(result, dict):
                result.pop("misclassified", None)
                result.pop("per_class", None)
        out["curve"].append(row)
        print(f"  {name} n={row['train_examples']}: " + ", ".join(
            f"{k} {v['accuracy']:.1%} F1 {v['macro_f1']:.3f}" for k, v in row.items()
            if isinstance(v, dict)) + f"; training {minutes:.1f} min, {steps} steps",
            file=sys.stderr, flush=True)
    out["config"] = {k: getattr(config, k) for k in (
        "base", "adapter_type", "r", "alpha", "target_modules", "learning_rate", "epochs", "batch_size",
        "grad_accum", "max_length", "label_loss")}
    out["final"] = out["curve"][-1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="sample,clauses")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--base", default="gemma-3-270m")
    parser.add_argument("--quick", action="store_true", help="a stratified subset of BBC, CUAD")
    parser.add_argument("--curve", default="",
                        help="also train on these numbers of examples, e.g. 50,100,200")
    parser.add_argument("--set", help='JSON of config overrides, e.g. \'{"max_steps": 40}\'')
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="the adapter and zero-shot only (comparing training settings)")
    parser.add_argument("--baselines-only", action="store_true",
                        help="no training: the baselines and their learning curve (minutes)")
    args = parser.parse_args()
    if args.baselines_only and args.no_baselines:
        parser.error("--baselines-only and --no-baselines leave nothing to run")
    args.curve = sorted(int(n) for n in args.curve.split(",") if n)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_baselines:
        embedder = None
    else:
        from core.rag.embeddings import default_embedder

        embedder = default_embedder(ROOT / "models")
    results = [run_dataset(args, name, embedder) for name in args.datasets.split(",")]
    methods = ("adapter", "zero_shot", "embedding", "tfidf_svc")
    print(f"{'dataset':<9}{'train':>6}{'test':>5}  " + "".join(f"{m:>20}" for m in methods)
          + f"{'train min':>10}")
    for r in results:
        if args.baselines_only:
            continue
        for row in r["curve"]:
            cells = "".join(
                f"{row[m]['accuracy']:>11.1%} {row[m]['macro_f1']:>7.3f}" if m in row
                else f"{'':>20}" for m in methods)
            print(f"{r['dataset']:<9}{row['train_examples']:>6}{r['test']:>5}  {cells}"
                  f"{row['adapter']['train_minutes']:>10.1f}")
    print("(each method: accuracy and macro-F1 on the same test split)")
    print(f"\nbaselines' learning curve (test accuracy)\n{'dataset':<9}{'train':>6}"
          f"{'MiniLM + LogReg':>17}{'TF-IDF + SVC':>14}")
    for r in results:
        for point in r.get("baselines_curve", []):
            print(f"{r['dataset']:<9}{point['train_examples']:>6}{point['baseline']:>17.1%}"
                  f"{point['tfidf']:>14.1%}")
    print(json.dumps({"preset": args.preset, "quick": args.quick, "seed": args.seed,
                      "results": results}))


if __name__ == "__main__":
    main()

"""Classification: label scoring against generate-then-parse (the reference classifier's way) on
the same adapter and documents — documents/s, share of valid labels, accuracy.

Label scoring: the prompt before the document computed once, documents of similar length in one
forward pass, every label's answer scored on the cached prefix ("score"; "score-each" is one
document at a time). Generate-then-parse: greedy decoding of the answer, then JSON parsing; an answer that
does not parse into an allowed label counts as invalid (and wrong).
The adapter: --adapter NAME from models/adapters, or one trained here with the Quick preset on a
BBC News sample (../shared/data). Documents: that adapter's own test split. Prints a table, then
JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.train import sample_data
from core.lora.adapters import load_classifier, read
from core.lora.config import TrainConfig, from_preset
from core.lora.trainer import prepare_data, train
from core.registry import linked_models_dir
from core.settings import DEFAULT_LORA_BASE

ROOT = Path(__file__).resolve().parents[1]


def train_adapter(base: str, steps: int, work: Path) -> Path:
    """A Quick-preset adapter, published into a models folder of the benchmark's own."""
    models = linked_models_dir(work / "models", ROOT / "models")
    data = sample_data(work / "bbc.csv", 250, 0)
    config = from_preset("quick", name="bench-classify", data=str(data), base=base,
                         max_steps=steps, eval_steps=0, save_steps=0, max_minutes=0.0)
    return train(config, work / "run", models)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="an adapter in models/adapters (default: train one)")
    parser.add_argument("--base", default=DEFAULT_LORA_BASE)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--limit", type=int, default=30, help="documents to classify")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-classify-"))
    folder = (ROOT / "models" / "adapters" / args.adapter if args.adapter
              else train_adapter(args.base, args.steps, work))
    info = read(folder)
    parts, _ = prepare_data(TrainConfig(**info.meta.config))
    texts, truth = parts.test.texts[:args.limit], parts.test.labels[:args.limit]
    classifier = load_classifier(folder.parent.parent, adapter=info.name)
    classifier.score(texts[0])  # warm-up, not timed
    runs = {"generate": lambda: [classifier.generate(t) for t in texts],
            "score-each": lambda: [classifier.score(t) for t in texts],
            "score": lambda: classifier.score_many(texts)}
    rows = []
    for mode, run in runs.items():
        started = time.perf_counter()
        predictions = run()
        seconds = time.perf_counter() - started
        valid = [p.label is not None for p in predictions]
        right = [p.label == y for p, y in zip(predictions, truth)]
        rows.append({"mode": mode, "documents": len(texts), "docs_per_s": len(texts) / seconds,
                     "valid_labels": sum(valid) / len(valid), "accuracy": sum(right) / len(right),
                     "invalid_examples": [p.output for p in predictions if p.label is None][:3]})
    generate, each, score = rows
    summary = {"adapter": info.name, "base": info.base, "labels": info.labels,
               "speedup": score["docs_per_s"] / generate["docs_per_s"],
               "speedup_one_at_a_time": each["docs_per_s"] / generate["docs_per_s"], "rows": rows}
    print(f"{'mode':<12}{'docs/s':>8}{'valid':>8}{'accuracy':>10}")
    for r in rows:
        print(f"{r['mode']:<12}{r['docs_per_s']:>8.2f}{r['valid_labels']:>8.0%}"
              f"{r['accuracy']:>10.1%}")
    print(f"label scoring ×{summary['speedup']:.2f} documents/s vs generate-then-parse "
          f"(×{summary['speedup_one_at_a_time']:.2f} one document at a time)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

"""LoRA training throughput, peak memory and accuracy: the Studio's trainer against a plain
HF Trainer + PEFT script, same base model, data, LoRA settings, max length and steps.

Baseline ("plain"): what a first script does — every example padded to the maximum length on the
right, the model's own loss (logits over the whole vocabulary at every position; labels masked
to the answer so both learn the same thing), random batches.
Studio: core.lora.trainer — left padding to the batch's longest example, length-grouped
batches, logits only for the answer positions.

Each variant trains in its own process so its peak memory (max RSS) is its own; then both
adapters are scored on the same test split with label scoring. Prints a table, then JSON.
Data: a stratified sample of BBC News (5 classes) from ../shared/data, or --data FILE.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.settings import DEFAULT_LORA_BASE

ROOT = Path(__file__).resolve().parents[1]
BBC = ROOT.parent / "shared" / "data" / "classification" / "bbc_news" / "bbc_news_train_5class.csv"


def sample_data(out: Path, rows: int, seed: int) -> Path:
    import pandas as pd

    frame = pd.read_csv(BBC).drop_duplicates("Text")
    per_label = rows // frame["Category"].nunique()
    picked = frame.groupby("Category").sample(per_label, random_state=seed)
    picked.rename(columns={"Text": "text", "Category": "label"})[["text", "label"]].to_csv(
        out, index=False)
    return out


def config_for(args, data: Path, name: str):
    from core.lora.config import from_preset

    return from_preset("quick", name=name, data=str(data), base=args.base,
                       max_steps=args.steps, eval_steps=0, save_steps=0, max_minutes=0.0)


def run_variant(args) -> dict:
    """In the child process: train one variant, time it, save its adapter."""
    import torch

    from core.lora.config import lora_config
    from core.lora.objective import encode_split
    from core.lora.trainer import build, prepare_data
    from core.models import load_base

    config = config_for(args, Path(args.data), args.variant)
    out = Path(args.out)
    if args.variant == "plain":
        from peft import get_peft_model
        from transformers import PrinterCallback, Trainer, TrainingArguments

        parts, categories = prepare_data(config)
        model, tokenizer = load_base(config.base, ROOT / "models")
        model = get_peft_model(model, lora_config(config))
        rows = encode_split(tokenizer, parts.train, categories, config.max_length)

        def pad_right(batch):
            ids = [r["input_ids"] + [tokenizer.pad_token_id] * (config.max_length - len(r["input_ids"]))
                   for r in batch]
            labels = [r["labels"] + [-100] * (config.max_length - len(r["labels"])) for r in batch]
            mask = [[1] * len(r["input_ids"]) + [0] * (config.max_length - len(r["input_ids"]))
                    for r in batch]
            return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                    "attention_mask": torch.tensor(mask)}

        trainer = Trainer(model=model, train_dataset=rows, data_collator=pad_right,
                          args=TrainingArguments(
                              output_dir=str(out / "plain"), per_device_train_batch_size=config.batch_size,
                              learning_rate=config.learning_rate, max_steps=config.max_steps,
                              logging_steps=1, save_strategy="no", report_to=[], seed=config.seed,
                              remove_unused_columns=False, disable_tqdm=True,
                              bf16=model.dtype == torch.bfloat16, use_cpu=True))
        trainer.remove_callback(PrinterCallback)
    else:
        session = build(config, out / "run", ROOT / "models")
        trainer, model, tokenizer = session.trainer, session.model, session.tokenizer
    train_rows = trainer.train_dataset
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    model.save_pretrained(out / "adapter")
    tokenizer.save_pretrained(out / "adapter")
    mean_tokens = sum(len(r["input_ids"]) for r in train_rows) / len(train_rows)
    real_tokens = mean_tokens * config.batch_size * config.max_steps  # same for both variants
    return {"variant": args.variant, "train_seconds": seconds,
            "tokens_per_s": real_tokens / seconds,
            "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def accuracy(args, adapter: Path) -> float:
    from core.lora.classify import Classifier
    from core.lora.trainer import prepare_data
    from core.models import load_adapter

    config = config_for(args, Path(args.data), "eval")
    parts, categories = prepare_data(config)
    model, tokenizer = load_adapter(config.base, adapter, ROOT / "models")
    classifier = Classifier(model.eval(), tokenizer, categories, config.max_length)
    predictions = classifier.score_many(parts.test.texts)
    right = sum(p.label == y for p, y in zip(predictions, parts.test.labels))
    return right / len(parts.test.texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DEFAULT_LORA_BASE)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rows", type=int, default=250, help="BBC sample size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="CSV with text,label (default: a BBC News sample)")
    parser.add_argument("--variant", choices=("plain", "studio"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # the child process
        print(json.dumps(run_variant(args)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    args.data = args.data or str(sample_data(work / "bbc.csv", args.rows, args.seed))
    results = {}
    for variant in ("plain", "studio"):
        out = work / variant
        child = subprocess.run([sys.executable, "-m", "bench.train", "--variant", variant, "--out", str(out),
                                "--base", args.base, "--steps", str(args.steps),
                                "--data", args.data], capture_output=True, text=True, cwd=ROOT)
        if child.returncode:
            raise SystemExit(f"{variant} failed:\n{child.stderr[-3000:]}")
        results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
        results[variant]["test_accuracy"] = accuracy(args, out / "adapter")
    plain, studio = results["plain"], results["studio"]
    summary = {"base": args.base, "steps": args.steps, "data": Path(args.data).name,
               "throughput_ratio": studio["tokens_per_s"] / plain["tokens_per_s"],
               "peak_memory_ratio": studio["peak_memory_bytes"] / plain["peak_memory_bytes"],
               "rows": results}
    print(f"{'variant':<10}{'tokens/s':>10}{'peak GiB':>10}{'test acc':>10}")
    for r in results.values():
        print(f"{r['variant']:<10}{r['tokens_per_s']:>10.1f}{r['peak_memory_bytes'] / 2**30:>10.2f}"
              f"{r['test_accuracy']:>10.1%}")
    print(f"throughput ×{summary['throughput_ratio']:.2f}, peak memory "
          f"×{summary['peak_memory_ratio']:.2f} (studio / plain)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

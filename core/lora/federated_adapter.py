"""The LoRA tensors a federation passes around: the adapter's initial state, one client's local
round, the global adapter's test metrics, the centralised run it is compared with, and the
adapter published to the library with the federation's report."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from core.lora.config import TrainConfig
from core.lora.data import LabelledData, Split
from core.lora.federation import Plan


def adapter_model(train: TrainConfig, models_dir: Path, state: dict | None = None):
    """(model, tokenizer): the base model with a LoRA adapter shaped by `train`, holding the
    tensors `state` when given, else freshly initialised."""
    from peft import get_peft_model, set_peft_model_state_dict

    from core.lora.config import lora_config
    from core.models import load_base

    model, tokenizer = load_base(train.base, models_dir)
    model = get_peft_model(model, lora_config(train))
    if state is not None:
        set_peft_model_state_dict(model, state)
    return model, tokenizer


def initial_state(plan: Plan, models_dir: Path) -> dict:
    import torch

    torch.manual_seed(plan.config.seed)
    return lora_state(adapter_model(plan.train, models_dir)[0])


def lora_state(model) -> dict:
    from peft import get_peft_model_state_dict

    return {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(model).items()}


def local_round(config: TrainConfig, parts: Split, categories: list[str], models_dir: Path,
                state: dict | None, steps: int) -> tuple[dict, float]:
    """`steps` of the Studio's trainer on `parts.train`, starting from `state` (LoRA tensors);
    returns the new tensors and the mean training loss."""
    from peft import set_peft_model_state_dict

    from core.lora.trainer import build

    with tempfile.TemporaryDirectory() as tmp:
        session = build(replace(config, max_steps=steps), Path(tmp), models_dir,
                        data=(parts, categories))
        if state is not None:
            set_peft_model_state_dict(session.model, state)
        result = session.trainer.train()
    return lora_state(session.model), float(result.training_loss)


def global_metrics(config: TrainConfig, test: LabelledData, categories: list[str],
                   models_dir: Path, state: dict) -> dict:
    """The global adapter on the held-out test split: the clients' training objective (the
    loss they lower) and accuracy."""
    import torch

    from core.lora.classify import Classifier
    from core.lora.evaluate import classify_split
    from core.lora.objective import LeftPadCollator, encode_split, objective, objective_tails

    model, tokenizer = adapter_model(config, models_dir, state)
    model.eval()
    rows = encode_split(tokenizer, test, categories, config.max_length)
    tails = objective_tails(tokenizer, categories, config)
    collate = LeftPadCollator(tokenizer.pad_token_id, tails)
    with torch.no_grad():
        losses = [objective(model, collate(rows[i:i + 4]), tails, config.label_loss)[0].item()
                  * len(rows[i:i + 4]) for i in range(0, len(rows), 4)]
    classified = classify_split(Classifier(model, tokenizer, categories, config.max_length), test)
    return {"loss": sum(losses) / len(rows), "accuracy": classified["accuracy"],
            "macro_f1": classified["macro_f1"]}


def centralised(plan: Plan, models_dir: Path, initial: dict) -> list[dict]:
    """The same budget on the pooled data, no federation: per round, as many steps as all
    clients together, then the same test metrics. What federation is compared against."""
    state, rows = initial, []
    assert plan.pooled is not None  # made by Plan.make, which a centralised run starts from
    for round_no in range(1, plan.config.rounds + 1):
        state, _ = local_round(plan.train, plan.pooled, plan.categories, models_dir, state,
                               plan.config.local_steps * plan.config.clients)
        rows.append({"round": round_no, **global_metrics(plan.train, plan.test, plan.categories,
                                                        models_dir, state)})
    return rows


def summary(plan: Plan, config: dict, history: list[dict], shards: list[int],
            started: float) -> dict:
    """The federation's report: saved in the adapter's metadata (`federated`), shown on the
    Adapters page, returned by `run`."""
    return {"name": plan.config.name, "config": config, "rounds": history, "shards": shards,
            "test_size": len(plan.test.texts), "seconds": round(time.time() - started, 1)}


def save_adapter(plan: Plan, models_dir: Path, state: dict, report: dict) -> Path:
    from core.lora.adapters import AdapterMeta, publish
    from core.models import base_fingerprint

    model, _ = adapter_model(plan.train, models_dir, state)
    last = report["rounds"][-1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "adapter"
        model.save_pretrained(folder)
        AdapterMeta.from_dict({
            "name": plan.config.name, "base": plan.train.base,
            "base_sha256": base_fingerprint(plan.train.base, models_dir),
            "labels": plan.categories, **plan.provenance, "config": asdict(plan.train),
            "created": time.time(), "federated": report,
            "evaluation": {"test_size": report["test_size"],
                           "adapter": {"accuracy": last["accuracy"],
                                       "macro_f1": last["macro_f1"]}}}).write(folder)
        return publish(folder, models_dir, plan.config.name)

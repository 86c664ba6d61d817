"""Federated LoRA with Flower: each client trains the Studio's trainer on its own shard, the
server averages the LoRA tensors weighted by example counts (FedAvg), every client starts the
next round from that aggregate. Only the adapter's tensors travel; the base model stays put.

`run` drives Flower's simulation engine on one machine; the same `client_app` / `server_app`
run in Flower's deployment mode across machines (see README). Per round the server records each
client's training loss and the global adapter's loss and accuracy on a held-out test split.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from core.training.config import TrainConfig, check_name, from_preset
from core.training.data import LabelledData, Split

SPLITS = ("iid", "by-label")


@dataclass
class FederatedConfig:
    name: str
    data: str
    text_col: str = "text"
    label_col: str = "label"
    base: str = "gemma-3-270m"
    clients: int = 3
    rounds: int = 3
    split: str = "iid"  # iid: every client sees every label; by-label: each its own labels
    local_steps: int = 4  # optimiser steps per client per round
    preset: str = "quick"
    seed: int = 42

    def __post_init__(self) -> None:
        check_name(self.name, "adapter")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if not 1 <= self.clients <= 32 or not 1 <= self.rounds <= 100:
            raise ValueError("use 1–32 clients and 1–100 rounds")

    def train_config(self) -> TrainConfig:
        return from_preset(self.preset, name=self.name, data=self.data, text_col=self.text_col,
                           label_col=self.label_col, base=self.base, max_steps=self.local_steps,
                           eval_steps=0, save_steps=0, seed=self.seed)


def shard(data: LabelledData, clients: int, how: str, seed: int) -> list[LabelledData]:
    """iid: a stratified deal, every client gets each label's share. by-label: labels are
    dealt out, so clients hold different labels (the hard, realistic case)."""
    import random

    order = list(range(len(data.texts)))
    random.Random(seed).shuffle(order)
    if how == "iid":
        order.sort(key=lambda i: data.labels[i])  # stable: shuffled within each label
        groups = [order[c::clients] for c in range(clients)]
    else:
        labels = data.label_set
        owner = {label: n % clients for n, label in enumerate(labels)}
        groups = [[i for i in order if owner[data.labels[i]] == c] for c in range(clients)]
    empty = [c for c, g in enumerate(groups) if not g]
    if empty:
        raise ValueError(f"{clients} clients is more than the data can be dealt to "
                         f"({len(data.label_set)} labels, {len(data.texts)} examples)")
    return [data.subset(sorted(g)) for g in groups]


def lora_state(model) -> dict:
    from peft import get_peft_model_state_dict

    return {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(model).items()}


def local_round(config: TrainConfig, parts: Split, categories: list[str], models_dir: Path,
                state: dict | None, steps: int) -> tuple[dict, float]:
    """`steps` of the Studio's trainer on `parts.train`, starting from `state` (LoRA tensors);
    returns the new tensors and the mean training loss."""
    from peft import set_peft_model_state_dict

    from core.training.trainer import build

    with tempfile.TemporaryDirectory() as tmp:
        session = build(replace(config, max_steps=steps), Path(tmp), models_dir,
                        data=(parts, categories))
        if state is not None:
            set_peft_model_state_dict(session.model, state)
        result = session.trainer.train()
    return lora_state(session.model), float(result.training_loss)


def global_metrics(config: TrainConfig, test: LabelledData, categories: list[str],
                   models_dir: Path, state: dict) -> dict:
    """The global adapter on the held-out test split: answer-token loss and accuracy."""
    import torch
    from peft import get_peft_model, set_peft_model_state_dict

    from core.classify import Classifier
    from core.training.evaluate import classify_split
    from core.training.trainer import (LeftPadCollator, answer_only_loss, encode_split,
                                       load_base, lora_config)

    model, tokenizer = load_base(config.base, models_dir)
    model = get_peft_model(model, lora_config(config))
    set_peft_model_state_dict(model, state)
    model.eval()
    rows = encode_split(tokenizer, test, categories, config.max_length)
    collate = LeftPadCollator(tokenizer.pad_token_id)
    with torch.no_grad():
        losses = [answer_only_loss(model, collate(rows[i:i + 4]))[0].item() * len(rows[i:i + 4])
                  for i in range(0, len(rows), 4)]
    classified = classify_split(Classifier(model, tokenizer, categories, config.max_length), test)
    return {"loss": sum(losses) / len(rows), "accuracy": classified["accuracy"],
            "macro_f1": classified["macro_f1"]}


@dataclass
class Plan:
    """What every process of a federation needs, computed once from the config."""
    config: FederatedConfig
    train: TrainConfig
    categories: list[str]
    shards: list[Split]
    test: LabelledData
    pooled: Split

    @classmethod
    def make(cls, config: FederatedConfig) -> "Plan":
        from core.training.trainer import prepare_data

        train = config.train_config()
        parts, categories = prepare_data(train)
        shards = [Split(piece, parts.validation, parts.test, parts.ratios, parts.seed)
                  for piece in shard(parts.train, config.clients, config.split, config.seed)]
        return cls(config, train, categories, shards, parts.test, parts)


def client_app(plan: Plan, models_dir: Path):
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        import torch  # noqa: F401 — Flower converts tensors only once torch is imported

        index = int(context.node_config["partition-id"])
        state = msg.content["arrays"].to_torch_state_dict()
        new_state, loss = local_round(plan.train, plan.shards[index], plan.categories, models_dir,
                                      state, plan.config.local_steps)
        metrics = {"train_loss": loss, "client": index,
                   "num-examples": len(plan.shards[index].train.texts)}
        return Message(content=RecordDict({"arrays": ArrayRecord(torch_state_dict=new_state),
                                           "metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


def server_app(plan: Plan, models_dir: Path, initial: dict, history: list[dict]):
    from flwr.app import ArrayRecord, Context, MetricRecord
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg

    app = ServerApp()
    clients_per_round: list[list[dict]] = []

    def record_clients(replies, weight_key):
        rows = [dict(r["metrics"]) for r in replies]
        clients_per_round.append(sorted(({"client": int(m["client"]), "loss": m["train_loss"],
                                          "examples": int(m["num-examples"])} for m in rows),
                                        key=lambda m: m["client"]))
        total = sum(m["num-examples"] for m in rows)
        return MetricRecord({"train_loss": sum(m["train_loss"] * m["num-examples"]
                                               for m in rows) / total})

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        measured = global_metrics(plan.train, plan.test, plan.categories, models_dir,
                                  arrays.to_torch_state_dict())
        history.append({"round": server_round, **measured,
                        "clients": clients_per_round[-1] if server_round else []})
        return MetricRecord(measured)

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        n = plan.config.clients
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n,
                          min_available_nodes=n, train_metrics_aggr_fn=record_clients)
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(torch_state_dict=initial),
                                num_rounds=plan.config.rounds, evaluate_fn=evaluate)
        history.append({"final": result.arrays.to_torch_state_dict()})

    return app


def centralised(plan: Plan, models_dir: Path, initial: dict) -> list[dict]:
    """The same budget on the pooled data, no federation: per round, as many steps as all
    clients together, then the same test metrics. What federation is compared against."""
    state, rows = initial, []
    for round_no in range(1, plan.config.rounds + 1):
        state, _ = local_round(plan.train, plan.pooled, plan.categories, models_dir, state,
                               plan.config.local_steps * plan.config.clients)
        rows.append({"round": round_no, **global_metrics(plan.train, plan.test, plan.categories,
                                                        models_dir, state)})
    return rows


def initial_state(plan: Plan, models_dir: Path) -> dict:
    import torch
    from peft import get_peft_model

    from core.training.trainer import load_base, lora_config

    torch.manual_seed(plan.config.seed)
    model, _ = load_base(plan.train.base, models_dir)
    return lora_state(get_peft_model(model, lora_config(plan.train)))


def run(config: FederatedConfig, models_dir: Path, compare_centralised: bool = False) -> dict:
    """A whole federation in Flower's simulation engine; saves the global adapter to the
    library with its per-round history. Returns the report."""
    import os

    from flwr.simulation import run_simulation

    from core.config import PROJECT_ROOT

    # Ray's worker processes import the client code by module name.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    started = time.time()
    plan = Plan.make(config)
    initial = initial_state(plan, models_dir)
    history: list[dict] = []
    run_simulation(server_app=server_app(plan, models_dir, initial, history),
                   client_app=client_app(plan, models_dir), num_supernodes=config.clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": config.clients,
                                                 "include_dashboard": False}})
    if not history or "final" not in history[-1]:
        raise RuntimeError("the federation did not finish; see the log above")
    final = history.pop()["final"]
    report = {"name": config.name, "config": asdict(config), "rounds": history,
              "shards": [len(s.train.texts) for s in plan.shards],
              "test_size": len(plan.test.texts), "seconds": round(time.time() - started, 1)}
    if compare_centralised:
        report["centralised"] = centralised(plan, models_dir, initial)
    report["adapter"] = str(save_adapter(plan, models_dir, final, report))
    return report


def save_adapter(plan: Plan, models_dir: Path, state: dict, report: dict) -> Path:
    from peft import get_peft_model, set_peft_model_state_dict

    from core.training.trainer import base_fingerprint, load_base, lora_config, publish

    model, _ = load_base(plan.train.base, models_dir)
    model = get_peft_model(model, lora_config(plan.train))
    set_peft_model_state_dict(model, state)
    last = report["rounds"][-1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "adapter"
        model.save_pretrained(folder)
        meta = {"name": plan.config.name, "base": plan.train.base,
                "base_sha256": base_fingerprint(plan.train.base, models_dir),
                "labels": plan.categories, "prompt_format": "studio-classify-v1",
                "dataset": Path(plan.config.data).name, "dataset_sha256": plan.pooled.fingerprint,
                "split": {"ratios": list(plan.pooled.ratios), "seed": plan.pooled.seed,
                          "sizes": plan.pooled.sizes},
                "config": asdict(plan.train), "created": time.time(),
                "federated": report,
                "evaluation": {"test_size": report["test_size"],
                               "adapter": {"accuracy": last["accuracy"],
                                           "macro_f1": last["macro_f1"]}}}
        (folder / "studio-adapter.json").write_text(json.dumps(meta, indent=2))
        return publish(folder, models_dir, plan.config.name)

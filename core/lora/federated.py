"""Federated LoRA with Flower: each client trains the Studio's trainer on its own data, the
server averages the LoRA tensors weighted by example counts (FedAvg), every client starts the
next round from that aggregate. Only the adapter's tensors travel; the base model stays put.

Two ways to run the same apps. `run` drives Flower's simulation engine on one machine, dealing
one data file out to the clients. `deploy/flower` packages `deployment_server_app` and
`deployment_client_app` for Flower's deployment mode: a SuperLink on the server, one SuperNode per
data holder, each training on its own file (see README). Either way the server records, per
round, each client's training loss and example count and the global adapter's loss and accuracy
on a held-out test set, and publishes the global adapter to the library with that history.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError
from core.files import check_name
from core.lora.config import PRESETS, TrainConfig, check_bounds, from_preset, option
from core.lora.data import LabelledData, Split, clean, load
from core.settings import DEFAULT_LORA_BASE

if TYPE_CHECKING:
    from flwr.app import Context
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp

SPLITS = ("iid", "by-label")
log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Federation:
    """Settings every federation shares, simulated or deployed; the CLI's flags are built
    from these declarations."""
    name: str = field(metadata={"help": "Name of the global adapter."})
    text_col: str = option("text", "Column holding the document text.")
    label_col: str = option("label", "Column holding the label.")
    base: str = option(DEFAULT_LORA_BASE, "Base model: registry name or HF folder, the same on "
                                          "every client.")
    clients: int = option(3, "Clients that take part in every round.", 1, 32)
    rounds: int = option(3, "Rounds of local training and averaging.", 1, 100)
    local_steps: int = option(4, "Optimiser steps per client per round.", 1, 10_000)
    preset: str = option("quick", "The training preset each client starts from.",
                         choices=list(PRESETS))
    seed: int = option(42, "Seed for the split and the initial LoRA weights.", 0, 2**31 - 1)

    def __post_init__(self) -> None:
        check_name(self.name, "adapter")
        check_bounds(self)

    def train_config(self, data: str) -> TrainConfig:
        return from_preset(self.preset, name=self.name, data=data, text_col=self.text_col,
                           label_col=self.label_col, base=self.base, max_steps=self.local_steps,
                           eval_steps=0, save_steps=0, early_stopping_patience=0,
                           # every client trains the round's steps: no preset time limit
                           max_minutes=0.0, seed=self.seed)


@dataclass(kw_only=True)
class FederatedConfig(Federation):
    """Simulation: one file, dealt out to `clients` simulated clients."""
    data: str = field(metadata={"help": "CSV or JSONL file with the labelled examples."})
    split: str = option("iid", "iid: every client sees every label; by-label: each client its "
                               "own labels.", choices=list(SPLITS))


@dataclass(kw_only=True)
class DeploymentConfig(Federation):
    """Flower's deployment mode: the run config of `deploy/flower` (its keys spelled with '-').
    Every SuperNode trains on its own file, named by its node config `data`; the server only
    holds the test file."""
    test: str  # the server's held-out labelled file
    labels: list[str]  # every label of the federation: clients and server build one prompt
    models_dir: str = ""  # "": each machine's Studio setting (STUDIO_MODELS_DIR or models/)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.labels = sorted(set(self.labels))  # the order every Studio adapter keeps
        if len(self.labels) < 2:
            raise InputError("labels: name at least two labels, comma-separated")
        if not self.test:
            raise InputError("test: name the server's labelled test file")

    @classmethod
    def from_run_config(cls, run_config: dict) -> DeploymentConfig:
        values = {key.replace("-", "_"): value for key, value in run_config.items()}
        values["labels"] = [label.strip() for label in str(values.get("labels", "")).split(",")
                            if label.strip()]
        return cls(**values)

    def models(self) -> Path:
        from core.settings import load_settings

        return Path(self.models_dir).expanduser() if self.models_dir else load_settings().models_dir

    def read(self, path: Path) -> LabelledData:
        """A node's or the server's own file, cleaned like training data. A node's file may hold
        a single label or a few examples (clean's errors are about splitting one file three
        ways, which nobody does here); every label must be one of the run's."""
        data, findings = clean(load(path, self.text_col, self.label_col))
        for finding in findings:
            if finding.level == "warning":
                log.warning("%s: %s", path.name, finding.message)
        if not data.texts:
            raise InputError(f"{path.name}: no labelled examples")
        unknown = sorted(set(data.labels) - set(self.labels))
        if unknown:
            raise InputError(f"{path.name}: labels not in the run's labels "
                             f"({', '.join(self.labels)}): {', '.join(unknown)}")
        return data


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
        raise InputError(f"{clients} clients is more than the data can be dealt to "
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


@dataclass
class Plan:
    """What the server of a federation needs, computed once from the config; in simulation also
    every client's shard and the pooled data."""
    config: FederatedConfig | DeploymentConfig
    train: TrainConfig
    categories: list[str]
    test: LabelledData
    provenance: dict  # where the data came from, for the adapter's metadata
    shards: list[Split] = field(default_factory=list)
    pooled: Split | None = None

    @classmethod
    def make(cls, config: FederatedConfig) -> Plan:
        from core.lora.trainer import prepare_data

        train = config.train_config(config.data)
        parts, categories = prepare_data(train)
        shards = [Split(piece, parts.validation, parts.test, parts.ratios, parts.seed)
                  for piece in shard(parts.train, config.clients, config.split, config.seed)]
        provenance = {"dataset": Path(config.data).name, "dataset_sha256": parts.fingerprint,
                      "split": {"ratios": list(parts.ratios), "seed": parts.seed,
                                "sizes": parts.sizes}}
        return cls(config, train, categories, parts.test, provenance, shards, parts)

    @classmethod
    def deployed(cls, config: DeploymentConfig) -> Plan:
        """The server's side of a deployment: the training data stays on the SuperNodes."""
        test = config.read(Path(config.test).expanduser())
        provenance = {"test_dataset": Path(config.test).name, "test_sha256": test.fingerprint()}
        return cls(config, config.train_config(""), config.labels, test, provenance)


@dataclass
class ClientWork:
    """One client's part of a round: who it is, its data (only `data.train` is trained on), the
    federation's trainer settings and labels."""
    client: int
    data: Split
    train: TrainConfig
    categories: list[str]
    steps: int
    models_dir: Path


def client_app(work: Callable[[Context], ClientWork]) -> ClientApp:
    """A ClientApp that trains `work(context)` from the global tensors a round brings."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        import torch  # noqa: F401 — Flower converts tensors only once torch is imported

        job = work(context)
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)  # the server sends the tensors under "arrays"
        state = arrays.to_torch_state_dict()
        new_state, loss = local_round(job.train, job.data, job.categories, job.models_dir,
                                      state, job.steps)
        metrics: dict[str, int | float | list[int] | list[float]] = {
            "train_loss": loss, "client": job.client, "num-examples": len(job.data.train.texts)}
        return Message(content=RecordDict({"arrays": ArrayRecord(torch_state_dict=new_state),
                                           "metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


def node_work(context: Context) -> ClientWork:
    """A SuperNode's part: its own file (node config `data`), the run's settings, and Flower's
    id of the node to tell the clients apart in the history."""
    config = DeploymentConfig.from_run_config(context.run_config)
    if "data" not in context.node_config:
        raise InputError("this SuperNode has no data file: start it with "
                         "--node-config 'data=\"/path/to/file.csv\"'")
    path = Path(str(context.node_config["data"])).expanduser()
    local = config.read(path)
    nothing = LabelledData([], [], local.source)  # eval_steps=0: a client never validates
    return ClientWork(context.node_id, Split(local, nothing, nothing, (1.0, 0.0, 0.0), config.seed),
                      config.train_config(str(path)), config.labels, config.local_steps,
                      config.models())


def deployment_client_app() -> ClientApp:
    return client_app(node_work)


def federate(grid: Grid, plan: Plan, models_dir: Path, initial: dict) -> tuple[dict, list[dict]]:
    """FedAvg over the nodes `grid` reaches, `plan.config.clients` of them in every round.
    Returns the final LoRA tensors and the history: per round the clients' losses and example
    counts and the global adapter's test metrics (round 0: the initial adapter)."""
    from flwr.app import ArrayRecord, MetricRecord
    from flwr.serverapp.strategy import FedAvg

    history: list[dict] = []
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
        # FedAvg only logs failed clients and goes on with the old tensors: stop instead, so a
        # round nobody trained never counts.
        if len(clients_per_round) < server_round:
            raise RuntimeError(f"round {server_round}: no client finished training (their "
                               "errors are in the ServerApp's log)")
        measured = global_metrics(plan.train, plan.test, plan.categories, models_dir,
                                  arrays.to_torch_state_dict())
        history.append({"round": server_round, **measured,
                        "clients": clients_per_round[-1] if server_round else []})
        return MetricRecord(measured)

    n = plan.config.clients
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=n,
                      min_available_nodes=n, train_metrics_aggr_fn=record_clients)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(torch_state_dict=initial),
                            num_rounds=plan.config.rounds, evaluate_fn=evaluate)
    return result.arrays.to_torch_state_dict(), history


def server_app(plan: Plan, models_dir: Path, initial: dict, outcome: list) -> ServerApp:
    """The simulation's ServerApp: `federate`'s result lands in `outcome` for `run`."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        outcome.append(federate(grid, plan, models_dir, initial))

    return app


def deployment_server_app() -> ServerApp:
    """The deployment's ServerApp: settings from the run config; publishes the global adapter
    to the server's library."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        started = time.time()
        config = DeploymentConfig.from_run_config(context.run_config)
        models_dir = config.models()
        plan = Plan.deployed(config)
        final, history = federate(grid, plan, models_dir, initial_state(plan, models_dir))
        # The Adapters page says how the data was dealt: here each node brought its own, and
        # the server learns how much of it only from the nodes' replies.
        report = summary(plan, {**asdict(config), "split": "local"}, history,
                         [c["examples"] for c in history[1]["clients"]], started)
        save_adapter(plan, models_dir, final, report)

    return app


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


def summary(plan: Plan, config: dict, history: list[dict], shards: list[int],
            started: float) -> dict:
    """The federation's report: saved in the adapter's metadata (`federated`), shown on the
    Adapters page, returned by `run`."""
    return {"name": plan.config.name, "config": config, "rounds": history, "shards": shards,
            "test_size": len(plan.test.texts), "seconds": round(time.time() - started, 1)}


def run(config: FederatedConfig, models_dir: Path, compare_centralised: bool = False) -> dict:
    """A whole federation in Flower's simulation engine; saves the global adapter to the
    library with its per-round history. Returns the report."""
    import os

    from flwr.simulation import run_simulation

    from core.settings import PROJECT_ROOT

    # Ray's worker processes import the client code by module name.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
    started = time.time()
    plan = Plan.make(config)
    initial = initial_state(plan, models_dir)
    outcome: list[tuple[dict, list[dict]]] = []

    def work(context: Context) -> ClientWork:
        index = int(context.node_config["partition-id"])
        return ClientWork(index, plan.shards[index], plan.train, plan.categories,
                          config.local_steps, models_dir)

    run_simulation(server_app=server_app(plan, models_dir, initial, outcome),
                   client_app=client_app(work), num_supernodes=config.clients,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   # "local": never the cluster of RAY_ADDRESS (for ingestion)
                                   "init_args": {"address": "local", "num_cpus": config.clients,
                                                 "include_dashboard": False}})
    if not outcome:
        raise RuntimeError("the federation did not finish; see the log above")
    final, history = outcome[0]
    report = summary(plan, asdict(config), history, [len(s.train.texts) for s in plan.shards],
                     started)
    if compare_centralised:
        report["centralised"] = centralised(plan, models_dir, initial)
    report["adapter"] = str(save_adapter(plan, models_dir, final, report))
    return report


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

"""What a federation is, before any training: its settings, simulated (one file dealt out to
the clients) or deployed (each SuperNode with its own file), how a file is dealt, and the plan the
server works from. Training and Flower's apps: core.lora.federated_adapter, core.lora.federated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InputError
from core.files import check_name
from core.lora.config import PRESETS, TrainConfig, check_bounds, from_preset, option
from core.lora.data import LabelledData, Split, clean, load
from core.settings import DEFAULT_LORA_BASE

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

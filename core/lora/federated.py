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

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError
from core.lora.config import TrainConfig
from core.lora.data import LabelledData, Split
from core.lora.federated_adapter import (
    centralised,
    global_metrics,
    initial_state,
    local_round,
    save_adapter,
    summary,
)
from core.lora.federation import DeploymentConfig, FederatedConfig, Plan

if TYPE_CHECKING:
    from flwr.app import Context
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp


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

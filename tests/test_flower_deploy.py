"""Flower's deployment mode, for real: a SuperLink and two SuperNodes on 127.0.0.1, each
SuperNode holding its own CSV file, the app in deploy/flower started with `flwr run`, and the
Studio's trainer training the tiny model on every node."""

import json
import os
import re
import subprocess
import sys
import tomllib
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pytest

from core.lora.federated import node_work
from core.lora.federation import DeploymentConfig
from core.samples import SAMPLE_DATASET
from tests.conftest import OUTPUT, ROOT
from tests.servers import free_port, running
from tests.tiny import tiny_causal_lm

# Flower's commands, and the flower-superexec they start by name: found on PATH.
BIN = Path(sys.executable).parent
APP = ROOT / "deploy" / "flower"
LOGS = OUTPUT / "flower"
CONNECTION = "studio-test"


def app_run_config(**overrides) -> dict:
    """The run config Flower hands the apps: deploy/flower's defaults, then `overrides`."""
    with open(APP / "pyproject.toml", "rb") as fh:
        defaults = tomllib.load(fh)["tool"]["flwr"]["app"]["config"]
    return {**defaults, **overrides}


def test_run_config_defaults_are_the_studio_defaults():
    """Flower reads its run config only from deploy/flower/pyproject.toml, so the defaults are
    written there again; this keeps the copy equal to DeploymentConfig's declarations."""
    from dataclasses import MISSING, fields

    declared = {f.name.replace("_", "-"): f.default for f in fields(DeploymentConfig)
                if f.default is not MISSING}
    written = app_run_config()
    assert set(written) == {f.name.replace("_", "-") for f in fields(DeploymentConfig)}
    assert {key: written[key] for key in declared} == declared


def test_run_config_and_node_files(tmp_path):
    config = DeploymentConfig.from_run_config(app_run_config(
        test="t.csv", labels="Spam, Ham,Spam", **{"local-steps": 2}))
    assert config.labels == ["Ham", "Spam"] and config.local_steps == 2
    assert config.models_dir == "" and config.clients == 3
    with pytest.raises(ValueError, match="at least two labels"):
        DeploymentConfig.from_run_config(app_run_config(test="t.csv", labels="Spam"))
    with pytest.raises(ValueError, match="test file"):
        DeploymentConfig.from_run_config(app_run_config(labels="Spam,Ham"))
    # A node may hold one label and a single example, but only the run's labels.
    pd.DataFrame({"text": ["win money now"], "label": ["Spam"]}).to_csv(tmp_path / "one.csv",
                                                                         index=False)
    assert config.read(tmp_path / "one.csv").labels == ["Spam"]
    pd.DataFrame({"text": ["a", "b"], "label": ["Spam", "Eggs"]}).to_csv(tmp_path / "odd.csv",
                                                                         index=False)
    with pytest.raises(ValueError, match="not in the run's labels.*Eggs"):
        config.read(tmp_path / "odd.csv")


def test_a_supernode_without_a_data_file_says_how_to_name_one():
    from flwr.app import Context, RecordDict

    context = Context(run_id=1, node_id=7, node_config={}, state=RecordDict(),
                      run_config=app_run_config(test="t.csv", labels="Spam,Ham"))
    with pytest.raises(ValueError, match="--node-config 'data="):
        node_work(context)


def deal(folder: Path) -> dict[str, Path]:
    """The sample contracts, per label: 2 for the server's test file, 6 for site A's file, the
    other 4 for site B's, so the two sites' example counts tell them apart."""
    frame = pd.read_csv(SAMPLE_DATASET)[["text", "label"]]
    test = frame.groupby("label").head(2)
    rest = frame.drop(test.index)
    site_a = rest.groupby("label").head(6)
    files = {"test": test, "a": site_a, "b": rest.drop(site_a.index)}
    for name, part in files.items():
        part.to_csv(folder / f"{name}.csv", index=False)
    return {name: folder / f"{name}.csv" for name in files}


def flwr(*args: str, env: dict[str, str], log: Path, timeout: float) -> str:
    """A `flwr` command, its output appended to `log` as it comes; returns that output."""
    start = log.stat().st_size
    with open(log, "ab") as out:
        done = subprocess.run([str(BIN / "flwr"), *args], env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False)
    output = log.read_bytes()[start:].decode()
    assert done.returncode == 0, f"flwr {args[0]} failed"
    return output


@pytest.mark.slow
def test_two_supernodes_train_on_their_own_files(studio_env, models_env, tmp_path):
    tiny = tiny_causal_lm(tmp_path / "tiny")
    files = deal(tmp_path)
    labels = sorted(pd.read_csv(SAMPLE_DATASET)["label"].unique())
    LOGS.mkdir(exist_ok=True)
    logs = {name: LOGS / f"{name}.log" for name in ("superlink", "supernode-a", "supernode-b",
                                                    "flwr")}
    logs["flwr"].write_text("")
    # The Studio's code on every process's path; each its own Flower home, none in ~/.flwr.
    paths = [str(ROOT), os.environ.get("PYTHONPATH")]
    env = {"PATH": os.pathsep.join([str(BIN), os.environ["PATH"]]),
           "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    homes = {name: tmp_path / f"flwr-{name}" for name in ("superlink", "a", "b", "cli")}
    link = free_port()
    homes["cli"].mkdir()
    (homes["cli"] / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{link}"\ninsecure = true\n')
    cli_env = {**os.environ, **env, "FLWR_HOME": str(homes["cli"])}
    run_config = " ".join(f"{key}={json.dumps(value)}" for key, value in {
        "name": "fed-deploy", "base": str(tiny), "test": str(files["test"]),
        "labels": ",".join(labels), "clients": 2, "rounds": 2, "local-steps": 12}.items())
    try:
        with ExitStack() as stack:
            stack.enter_context(running(
                [str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port",
                 str(link), "--disable-runtime-dependency-installation"],
                f"http://127.0.0.1:{link}/health", logs["superlink"],
                env={**env, "FLWR_HOME": str(homes["superlink"])}))
            for site in ("a", "b"):
                port = free_port()
                stack.enter_context(running(
                    [str(BIN / "flower-supernode"), "--insecure", "--superlink",
                     f"127.0.0.1:{link}", "--port", str(port),
                     "--node-config", f"data={json.dumps(str(files[site]))}"],
                    f"http://127.0.0.1:{port}/health", logs[f"supernode-{site}"],
                    env={**env, "FLWR_HOME": str(homes[site])}))
            # --stream follows the ServerApp's log until the run ends.
            out = flwr("run", str(APP), CONNECTION, "--run-config", run_config, "--stream",
                       env=cli_env, log=logs["flwr"], timeout=300)
            run_id = re.search(r"Successfully started run (\d+)", out).group(1)
            listed = flwr("ls", CONNECTION, "--run-id", run_id, "--format", "json",
                          env=cli_env, log=logs["flwr"], timeout=60)
            assert json.loads(listed[listed.index("{"):])["runs"][0]["status"] == \
                "finished:completed"

        meta = json.loads((models_env / "adapters" / "fed-deploy" / "studio-adapter.json")
                          .read_text())
        report = meta["federated"]
        rounds = report["rounds"]
        assert [r["round"] for r in rounds] == [0, 1, 2]
        assert rounds[2]["loss"] < rounds[1]["loss"] < rounds[0]["loss"]
        for row in rounds[1:]:  # both SuperNodes trained every round, each on its own file
            assert sorted(c["examples"] for c in row["clients"]) == [20, 30]
            assert len({c["client"] for c in row["clients"]}) == 2
        assert sorted(report["shards"]) == [20, 30]
        assert meta["labels"] == labels and meta["test_dataset"] == "test.csv"
        assert meta["evaluation"]["adapter"]["accuracy"] == rounds[2]["accuracy"]
        assert report["test_size"] == 10
        assert (models_env / "adapters" / "fed-deploy" / "adapter_model.safetensors").is_file()
    except BaseException:
        for name, log in logs.items():
            if log.exists():
                print(f"===== {name} ({log}) =====\n{log.read_text()[-6000:]}")
        raise

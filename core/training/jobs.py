"""Training runs as their own processes: one at a time per machine, stoppable, readable from
disk by whoever looks (a page after a refresh, `python -m core runs`).

A run lives in `<data>/runs/<name>/`: config.yaml, metrics.jsonl, status.json, train.log,
checkpoints/, adapter/. The running trainer holds `<data>/runs/.active.json`; a STOP file in
the run folder asks it to stop after the current step and save the adapter it has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.config import PROJECT_ROOT, Settings
from core.training.config import TrainConfig

LOCK = ".active.json"
STOP = "STOP"


class RunBusy(Exception):
    pass


@dataclass
class RunInfo:
    name: str
    folder: Path
    status: dict
    config: dict


def runs_dir(settings: Settings) -> Path:
    return settings.data_dir / "runs"


def run_dir(settings: Settings, name: str) -> Path:
    return runs_dir(settings) / name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def active_run(settings: Settings) -> dict | None:
    """The run training now, if any; a lock left by a process that died is cleared."""
    lock = runs_dir(settings) / LOCK
    try:
        held = json.loads(lock.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if _alive(int(held.get("pid", -1))):
        return held
    lock.unlink(missing_ok=True)
    return None


def acquire(settings: Settings, name: str) -> None:
    """Called by the training process itself; refuses when another run is training."""
    held = active_run(settings)
    if held and held.get("pid") != os.getpid():
        raise RunBusy(f"run {held['name']!r} is training now (process {held['pid']}); stop it "
                      "or wait for it to finish — one run at a time on this machine")
    runs_dir(settings).mkdir(parents=True, exist_ok=True)
    lock = runs_dir(settings) / LOCK
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as fh:
        json.dump({"name": name, "pid": os.getpid()}, fh)


def release(settings: Settings) -> None:
    lock = runs_dir(settings) / LOCK
    try:
        if json.loads(lock.read_text()).get("pid") == os.getpid():
            lock.unlink()
    except (FileNotFoundError, json.JSONDecodeError):
        pass


def start(settings: Settings, config: TrainConfig, resume: bool = False) -> subprocess.Popen:
    """Launch `python -m core train --config` detached from the caller, so closing or
    refreshing the page that started it does not stop it."""
    held = active_run(settings)
    if held:
        raise RunBusy(f"run {held['name']!r} is training now; stop it or wait for it to finish")
    folder = run_dir(settings, config.name)
    if folder.exists() and not resume:  # a new run would mix its curve and log into the old
        raise ValueError(f"a run named {config.name!r} exists: choose another name, or resume it")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STOP).unlink(missing_ok=True)
    config.save(folder / "config.yaml")
    command = [sys.executable, "-m", "core", "train", "--config", str(folder / "config.yaml")]
    if resume:
        command.append("--resume")
    log = open(folder / "train.log", "a")
    return subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ,
                                                         "STUDIO_DATA_DIR": str(settings.data_dir),
                                                         "STUDIO_MODELS_DIR": str(settings.models_dir)})


def request_stop(settings: Settings, name: str) -> None:
    folder = run_dir(settings, name)
    if not folder.is_dir():
        raise ValueError(f"no run named {name!r}")
    (folder / STOP).touch()


def stop_requested(folder: Path) -> bool:
    return (Path(folder) / STOP).exists()


def read_status(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def read_metrics(folder: Path) -> list[dict]:
    path = Path(folder) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written right now
    return rows


def log_tail(folder: Path, lines: int = 20) -> str:
    path = Path(folder) / "train.log"
    if not path.exists():
        return ""
    with path.open("rb") as fh:  # the end only: a long run's log can be large
        fh.seek(max(0, path.stat().st_size - 64_000))
        text = fh.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def read_evaluation(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / "evaluation.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def list_runs(settings: Settings) -> list[RunInfo]:
    import yaml

    infos = []
    for folder in sorted(p for p in runs_dir(settings).glob("*") if p.is_dir()):
        config_path = folder / "config.yaml"
        config = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
        infos.append(RunInfo(folder.name, folder, read_status(folder), config or {}))
    return infos


def evaluated_runs(settings: Settings) -> list[str]:
    """Names of the runs whose test-split evaluation is written."""
    return [r.name for r in list_runs(settings) if read_evaluation(r.folder)]


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: a run killed while saving leaves a folder without the
    trainer state, which the Trainer writes last."""
    checkpoints = sorted((c for c in (Path(folder) / "checkpoints").glob("checkpoint-*")
                          if (c / "trainer_state.json").is_file()),
                         key=lambda p: int(p.name.split("-")[-1]))
    return checkpoints[-1] if checkpoints else None

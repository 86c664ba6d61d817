"""Training runs as their own processes: one at a time per machine, stoppable, readable from
disk by whoever looks (a page after a refresh, `python -m core runs`).

A run lives in `<data>/runs/<name>/`: config.yaml, metrics.jsonl, status.json, train.log,
checkpoints/, adapter/. The running trainer holds `<data>/runs/.active.json`; a STOP file in
the run folder asks it to stop after the current step and save the adapter it has.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from core import files
from core.errors import InputError, StudioError
from core.files import check_name
from core.lora.config import TrainConfig
from core.settings import PROJECT_ROOT, Settings

LOCK = ".active.json"
ETA_WINDOW = 10  # steps: recent enough to follow a change in load, enough to even out one step


CANCELLED = "cancelled"  # the state of a run stopped before its first step
TIME_LIMIT = "time limit: "  # how a stop_reason begins when the time limit ended training
# States of a run that ended before its last step: "running" and "stopping" are left by a
# process that was killed
UNFINISHED = ("stopped", "failed", "running", "stopping", CANCELLED)


class Cancelled(StudioError):
    """Stop was asked for before the first step: there is nothing to keep."""


class RunBusy(StudioError):
    pass


@dataclass(frozen=True)
class RunFolder:
    """One run's folder. Its file names live here only; every reader and writer of a run (the
    trainer, the pages, `runs`) goes through these methods, and every write is atomic."""
    path: Path

    CONFIG: ClassVar[str] = "config.yaml"
    STATUS: ClassVar[str] = "status.json"
    METRICS: ClassVar[str] = "metrics.jsonl"
    EVALUATION: ClassVar[str] = "evaluation.json"
    LOG: ClassVar[str] = "train.log"
    STOP: ClassVar[str] = "STOP"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def log_path(self) -> Path:
        return self.path / self.LOG

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    def exists(self) -> bool:
        return self.path.is_dir()

    def status(self) -> dict:
        return files.read_json(self.path / self.STATUS, {})

    def update_status(self, **fields) -> None:
        files.write_json(self.path / self.STATUS, {**self.status(), **fields,
                                                   "updated": time.time()})

    def append_metrics(self, row: dict) -> None:
        # Appending one short line is atomic enough: a reader stops at a line being written.
        with (self.path / self.METRICS).open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def metrics(self) -> list[dict]:
        path = self.path / self.METRICS
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line being written right now
        return rows

    def evaluation(self) -> dict | None:
        return files.read_json(self.path / self.EVALUATION)

    def write_evaluation(self, evaluation: dict) -> None:
        files.write_json(self.path / self.EVALUATION, evaluation)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:  # the end only: a long run's log can be large
            fh.seek(max(0, self.log_path.stat().st_size - 64_000))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def request_stop(self) -> None:
        if not self.exists():
            raise InputError(f"no run named {self.name!r}")
        (self.path / self.STOP).touch()

    def clear_stop(self) -> None:
        (self.path / self.STOP).unlink(missing_ok=True)

    def stop_requested(self) -> bool:
        return (self.path / self.STOP).exists()

    def drop_incomplete(self) -> None:
        """Remove what a failed run left half-written (a full disk, a crash while saving):
        checkpoints without their trainer state, an adapter without its metadata."""
        from core.lora.adapters import META

        half = [c for c in self.checkpoints.glob("checkpoint-*")
                if not (c / "trainer_state.json").is_file()]
        if self.adapter.is_dir() and not (self.adapter / META).is_file():
            half.append(self.adapter)
        for folder in half:
            shutil.rmtree(folder, ignore_errors=True)

    def last_checkpoint(self) -> Path | None:
        """The newest complete checkpoint: a run killed while saving leaves a folder without
        the trainer state, which the Trainer writes last."""
        done = (c for c in self.checkpoints.glob("checkpoint-*")
                if (c / "trainer_state.json").is_file())
        return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


@dataclass
class RunInfo:
    name: str
    folder: RunFolder
    status: dict
    config: dict


class Pace:
    """Time left from the pace of the last `window` steps. The machine's load changes while a
    run trains (another program starts, evaluation runs): an average since the start would
    keep the first minutes' pace, this one follows the run as it is now."""

    def __init__(self, step: int = 0, window: int = ETA_WINDOW):
        self.points: deque[tuple[int, float]] = deque([(step, 0.0)], maxlen=window + 1)

    def add(self, step: int, seconds: float) -> None:
        """`seconds` since the start, when `step` was done; a second log at a step is ignored."""
        if step > self.points[-1][0]:
            self.points.append((step, seconds))

    def eta(self, max_steps: int) -> tuple[float, int] | None:
        """Seconds left and how many steps that is measured from; None before the first step."""
        (first, started), (last, now) = self.points[0], self.points[-1]
        if last == first:
            return None
        return round((now - started) / (last - first) * max(0, max_steps - last), 1), last - first


def runs_dir(settings: Settings) -> Path:
    return settings.data_dir / "runs"


def run_dir(settings: Settings, name: str) -> RunFolder:
    """The folder of the run called `name`; a name that could leave the runs folder is
    refused before any path is built from it."""
    return RunFolder(runs_dir(settings) / check_name(name, "run"))


def active_run(settings: Settings) -> dict | None:
    """The run training now, if any; a lock left by a process that died is cleared."""
    lock = runs_dir(settings) / LOCK
    held = files.read_json(lock)
    if not isinstance(held, dict):
        return None
    if files.process_alive(int(held.get("pid", -1))):
        return held
    lock.unlink(missing_ok=True)
    return None


def acquire(settings: Settings, name: str) -> None:
    """Called by the training process itself; refuses when another run is training."""
    held = active_run(settings)
    if held and held.get("pid") != os.getpid():
        raise RunBusy(f"run {held['name']!r} is training now (process {held['pid']}); stop it "
                      "or wait for it to finish — one run at a time on this machine")
    files.write_json(runs_dir(settings) / LOCK, {"name": name, "pid": os.getpid()})


def release(settings: Settings) -> None:
    lock = runs_dir(settings) / LOCK
    if (files.read_json(lock) or {}).get("pid") == os.getpid():
        lock.unlink(missing_ok=True)


def resumable(folder: RunFolder) -> bool:
    """Whether a run (not running now) can go on from a checkpoint."""
    return folder.status().get("state") in UNFINISHED and folder.last_checkpoint() is not None


def start(settings: Settings, config: TrainConfig, resume: bool = False) -> subprocess.Popen:
    """Launch `python -m core train --config` detached from the caller, so closing or
    refreshing the page that started it does not stop it."""
    held = active_run(settings)
    if held:
        raise RunBusy(f"run {held['name']!r} is training now; stop it or wait for it to finish")
    folder = run_dir(settings, config.name)
    if folder.exists() and not resume and folder.status().get("state") == CANCELLED \
            and not folder.last_checkpoint():
        shutil.rmtree(folder.path)  # it never trained: its name is free again
    if folder.exists() and not resume:  # a new run would mix its curve and log into the old
        # a finished run has nothing to resume, and offering it sent people looking for a button
        raise InputError(f"a run named {config.name!r} exists: choose another name"
                         + (", or resume it" if resumable(folder) else ""))
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.clear_stop()
    # a resumed run's status still says how it ended: until its first step it is starting
    folder.update_status(state="starting")
    config.save(folder.config_path)
    command = [sys.executable, "-m", "core", "train", "--config", str(folder.config_path)]
    if resume:
        command.append("--resume")
    log = open(folder.log_path, "a")
    return subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ,
                                                         "STUDIO_DATA_DIR": str(settings.data_dir),
                                                         "STUDIO_MODELS_DIR": str(settings.models_dir)})


def list_runs(settings: Settings) -> list[RunInfo]:
    import yaml

    infos = []
    for path in sorted(p for p in runs_dir(settings).glob("*") if p.is_dir()):
        folder = RunFolder(path)
        config = (yaml.safe_load(folder.config_path.read_text())
                  if folder.config_path.exists() else {})
        infos.append(RunInfo(folder.name, folder, folder.status(), config or {}))
    return infos


def resume_point(settings: Settings) -> tuple[str, str] | None:
    """Where someone who comes back to the wizard left off: the run training now ("train"),
    else the newest run, at "evaluate" once it is evaluated and at "train" before (a run that
    failed or was stopped is read there); None before the first run."""
    active = active_run(settings)
    if active:
        return active["name"], "train"
    newest = max(list_runs(settings), key=lambda r: r.status.get("updated", 0), default=None)
    if newest is None:
        return None
    return newest.name, "evaluate" if newest.folder.evaluation() else "train"


def evaluated_runs(settings: Settings) -> list[str]:
    """Names of the runs whose test-split evaluation is written."""
    return [r.name for r in list_runs(settings) if r.folder.evaluation()]


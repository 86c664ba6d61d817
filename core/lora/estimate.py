"""What a run will cost, shown before it starts: trainable parameters (exact, from the model's
architecture), adapter size on disk, and peak memory and duration from a short calibration —
a few real training steps in a child process, so the measurement is the run's own."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.lora.config import TrainConfig
from core.settings import PROJECT_ROOT

CALIBRATION_STEPS = 3  # the first is warm-up; the longest batch comes first (length grouping)
ADAPTER_BYTES_PER_PARAM = 4  # PEFT keeps LoRA weights in float32


@dataclass
class Size:
    trainable: int
    total: int
    adapter_bytes: int


@dataclass
class Calibration:
    seconds_per_step: float
    peak_memory_bytes: int
    steps: int  # the whole run's optimiser steps
    seconds: float  # the whole run's training, estimated

    def fits(self, available_bytes: int) -> bool:
        return self.peak_memory_bytes < available_bytes * 0.9


def model_size(config: TrainConfig, models_dir: Path) -> Size:
    """Exact parameter counts without loading the weights: the model is built on the meta
    device from its config and wrapped with the run's LoRA settings."""
    from accelerate import init_empty_weights
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from core.lora.config import lora_config
    from core.lora.data import load
    from core.models import base_folder

    model_config = AutoConfig.from_pretrained(base_folder(config.base, models_dir))
    kind: Any = AutoModelForCausalLM
    if config.adapter_type == "classifier":  # the head's size depends on the label count
        kind = AutoModelForSequenceClassification
        data = load(Path(config.data), config.text_col, config.label_col)
        model_config.num_labels = len(set(data.labels))
    with init_empty_weights():
        model = get_peft_model(kind.from_config(model_config), lora_config(config))
    trainable, total = model.get_nb_trainable_parameters()
    return Size(trainable, total, trainable * ADAPTER_BYTES_PER_PARAM)


def optimiser_steps(config: TrainConfig, n_train: int) -> int:
    if config.max_steps > 0:
        return config.max_steps
    per_epoch = math.ceil(n_train / (config.batch_size * config.grad_accum))
    return max(1, math.ceil(per_epoch * config.epochs))


def measure(config: TrainConfig, models_dir: Path) -> Calibration:
    """Runs in the child process: a few real steps of this run, timed, peak memory read."""
    from core.lora.trainer import StepTimer, build

    with tempfile.TemporaryDirectory() as tmp:
        probe = replace(config, max_steps=CALIBRATION_STEPS, eval_steps=0,
                        save_steps=0, early_stopping_patience=0)
        session = build(probe, Path(tmp), models_dir)
        times: list[float] = []
        session.trainer.add_callback(StepTimer(times))
        session.trainer.train()
    per_step = sum(times[1:]) / max(1, len(times) - 1)
    steps = optimiser_steps(config, len(session.parts.train.texts))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return Calibration(round(per_step, 2), peak, steps, round(per_step * steps, 1))


def calibrate(config: TrainConfig, models_dir: Path, timeout_s: int = 600) -> Calibration:
    """`measure` in a child process, so its peak memory is this run's alone."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        path = Path(fh.name)
    try:
        config.save(path)
        out = subprocess.run([sys.executable, "-m", "core", "estimate", "--config", str(path),
                              "--json"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=timeout_s, env={**os.environ,
                                                     "STUDIO_MODELS_DIR": str(models_dir)})
    finally:
        path.unlink(missing_ok=True)
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the calibration run failed: {reason}")
    return Calibration(**json.loads(out.stdout.strip().splitlines()[-1]))

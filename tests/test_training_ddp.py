"""The same `python -m core train` under `accelerate launch` with two CPU processes (DDP over
gloo): one run folder, one adapter."""

import json
import os
import subprocess
import sys

import pytest

from core.samples import SAMPLE_DATASET
from core.settings import PROJECT_ROOT
from tests.tiny import tiny_causal_lm


@pytest.mark.slow
def test_two_process_ddp_run_yields_one_adapter(studio_env, models_env, tmp_path):
    tiny = tiny_causal_lm(tmp_path / "tiny")
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                  "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                  "--dynamo_backend", "no", "--main_process_port", "0"]
    out = subprocess.run(
        accelerate + ["-m", "core", "train", "--data", str(SAMPLE_DATASET), "--base", str(tiny),
                      "--preset", "quick", "--name", "ddp", "--max-steps", "4", "--json"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "STUDIO_DATA_DIR": str(studio_env),
             "STUDIO_MODELS_DIR": str(models_env)})
    assert out.returncode == 0, out.stderr[-3000:]
    results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 1  # only the first process reports and publishes
    assert (models_env / "adapters" / "ddp" / "adapter_model.safetensors").is_file()
    metrics = [json.loads(line) for line in (studio_env / "runs" / "ddp" / "metrics.jsonl").open()]
    steps = [m["step"] for m in metrics if "loss" in m]
    assert steps == [1, 2, 3, 4]  # one line per step: the second process writes nothing
    # 4 steps × batch 4 × 2 processes = 32 of 48 training examples: two processes shared it.
    assert metrics[-1]["epoch"] == pytest.approx(32 / 48, abs=0.01)

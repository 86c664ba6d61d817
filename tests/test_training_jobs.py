"""Training in its own process: stop, resume, one run at a time, a crash keeps checkpoints."""

import os
import signal
import time

import pytest

from core.lora import runs
from core.lora.config import TrainConfig
from core.samples import SAMPLE_DATASET
from core.settings import PROJECT_ROOT, load_settings
from tests.tiny import tiny_causal_lm

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(studio_env, tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / "registry.toml").write_text((PROJECT_ROOT / "models" / "registry.toml").read_text())
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models))
    return load_settings()


@pytest.fixture
def config(tmp_path):
    return TrainConfig(name="long", data=str(SAMPLE_DATASET), base=str(tiny_causal_lm(tmp_path / "m")),
                       max_steps=3000, batch_size=2, max_length=256, save_steps=10,
                       eval_steps=1000)


def wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def step(settings, name="long") -> int:
    return runs.run_dir(settings, name).status().get("step") or 0


def test_stop_then_resume_and_one_run_at_a_time(settings, config):
    proc = runs.start(settings, config)
    wait_for(lambda: step(settings) >= 12)
    with pytest.raises(runs.RunBusy, match="run 'long' is training now"):
        runs.start(settings, config)
    runs.run_dir(settings, "long").request_stop()
    assert proc.wait(120) == 0
    folder = runs.run_dir(settings, "long")
    status = folder.status()
    assert status["state"] == "stopped"
    stopped_at = status["step"]
    assert (settings.models_dir / "adapters" / "long" / "adapter_model.safetensors").is_file()
    assert runs.active_run(settings) is None
    with pytest.raises(ValueError, match="a run named 'long' exists"):
        runs.start(settings, config)  # a new run of that name would mix into this one
    checkpoint = folder.last_checkpoint()
    assert checkpoint is not None and int(checkpoint.name.split("-")[1]) == stopped_at

    proc = runs.start(settings, config, resume=True)
    wait_for(lambda: step(settings) > stopped_at + 3)
    runs.run_dir(settings, "long").request_stop()
    assert proc.wait(120) == 0
    steps = [m["step"] for m in folder.metrics()]
    resumed = steps[steps.index(stopped_at) + 1:]
    assert resumed and resumed[0] == stopped_at + 1  # continued, not restarted from 1


def test_a_killed_run_keeps_its_checkpoints_and_frees_the_machine(settings, config):
    proc = runs.start(settings, config)
    folder = runs.run_dir(settings, "long")
    wait_for(lambda: folder.last_checkpoint() is not None and step(settings) > 12)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    checkpoint = folder.last_checkpoint()
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert runs.active_run(settings) is None  # the dead process's lock is cleared
    proc = runs.start(settings, config, resume=True)
    wait_for(lambda: step(settings) > int(checkpoint.name.split("-")[1]) + 2)
    runs.run_dir(settings, "long").request_stop()
    assert proc.wait(120) == 0


def test_a_run_cancelled_while_starting_trains_nothing_and_frees_its_name(settings, config):
    proc = runs.start(settings, config)
    folder = runs.run_dir(settings, "long")
    assert folder.status()["state"] == "starting"
    folder.request_stop()  # the process is still importing and loading its model
    assert proc.wait(120) == 0
    status = folder.status()
    assert status["state"] == runs.CANCELLED and "before its first step" in status["stop_reason"]
    assert not folder.metrics() and folder.last_checkpoint() is None
    assert not (settings.models_dir / "adapters" / "long").exists()
    assert runs.active_run(settings) is None
    proc = runs.start(settings, config)  # the name is free again
    wait_for(lambda: step(settings) >= 1)
    folder.request_stop()
    assert proc.wait(120) == 0 and folder.status()["state"] == "stopped"


def test_a_taken_run_name_offers_resuming_only_a_run_that_can_resume(studio_env):
    from core.errors import InputError

    settings = load_settings()
    folder = runs.run_dir(settings, "taken")
    folder.path.mkdir(parents=True)
    config = TrainConfig(name="taken", data=str(SAMPLE_DATASET))
    folder.update_status(state="finished", step=10, max_steps=10)
    with pytest.raises(InputError, match=r"^a run named 'taken' exists: choose another name$"):
        runs.start(settings, config)
    folder.update_status(state="stopped", step=5, max_steps=10)
    checkpoint = folder.checkpoints / "checkpoint-5"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    assert runs.resumable(folder)
    with pytest.raises(InputError, match=r"choose another name, or resume it$"):
        runs.start(settings, config)

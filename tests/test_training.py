"""LoRA training with a tiny random model: the real Trainer, PEFT and data path."""

import json

import pytest
import torch
import torch.nn.functional as F

from core.lora import familiarity
from core.lora.adapters import META as ADAPTER_META
from core.lora.config import TrainConfig, from_preset
from core.lora.objective import LeftPadCollator, answer_only_loss
from core.lora.trainer import train
from core.samples import SAMPLE_DATASET
from core.settings import PROJECT_ROOT
from tests.tiny import tiny_causal_lm


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("tiny"))


def config(tiny, **kw) -> TrainConfig:
    base = dict(name="tiny-run", data=str(SAMPLE_DATASET), base=str(tiny), max_steps=30, batch_size=4,
                learning_rate=5e-3, max_length=256, eval_steps=10, save_steps=10)
    return TrainConfig(**{**base, **kw})


def test_answer_only_loss_equals_the_full_vocabulary_loss(tiny):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny)
    rows = [{"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, -100, 9, 10]},
            {"input_ids": [11, 12, 13, 14], "labels": [-100, -100, 13, 14]}]
    batch = LeftPadCollator(pad_id=0)(rows)
    fast, right = answer_only_loss(model, batch)
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 position_ids=batch["position_ids"]).logits
    targets = batch["labels"][:, 1:]
    slow = F.cross_entropy(full[:, :-1].reshape(-1, full.size(-1)), targets.reshape(-1),
                           ignore_index=-100)
    assert torch.allclose(fast, slow, atol=1e-5)
    first_choice = (full[:, :-1].argmax(-1) == targets) | (targets == -100)
    assert right.tolist() == first_choice.all(dim=1).float().tolist()


def test_training_lowers_the_loss_logs_and_saves_a_peft_adapter(tiny, tmp_path, models_env):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = train(config(tiny), tmp_path / "run", models_env)
    assert adapter == models_env / "adapters" / "tiny-run"  # published to the library
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [10, 20, 30] and "eval_accuracy" in evals[0]
    assert {"tokens_per_s", "eta_s", "eta_steps", "learning_rate", "grad_norm"} <= set(rows[-2])
    assert all(set(r) & {"loss", "eval_loss"} for r in rows)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 30
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert not list(adapter.glob("*.bin"))
    meta = json.loads((adapter / ADAPTER_META).read_text())
    assert meta["labels"] == ["Distributor", "Endorsement", "Hosting", "License", "Sponsorship"]
    assert meta["split"]["sizes"] == {"train": 48, "validation": 6, "test": 6}
    assert len(meta["base_sha256"]) == 64 and len(meta["dataset_sha256"]) == 64
    evaluation = meta["evaluation"]
    assert evaluation["test_size"] == 6
    profile = familiarity.load(adapter)  # the training split's documents, for likeness
    assert profile is not None and profile.vectors.shape[0] == 48
    for which in ("adapter", "zero_shot", "baseline", "tfidf"):
        result = evaluation[which]
        assert 0 <= result["accuracy"] <= 1 and sum(map(sum, result["confusion"])) == 6
    # 48 training examples: under the curve's smallest size, so its one point is the baselines'
    assert evaluation["learning_curve"] == [{"train_examples": 48, "baseline": evaluation[
        "baseline"]["accuracy"], "tfidf": evaluation["tfidf"]["accuracy"]}]

    # Reloaded from disk it predicts what the trained model predicted.
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), adapter)
    plain = AutoModelForCausalLM.from_pretrained(tiny)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    assert not torch.allclose(reloaded(ids).logits, plain(ids).logits)
    twice = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), adapter)
    assert torch.allclose(reloaded(ids).logits, twice(ids).logits)


def test_validation_scores_labels_even_when_training_on_answer_tokens(tiny, tmp_path, models_env):
    from core.lora.classify import Classifier
    from core.lora.objective import encode_split
    from core.lora.trainer import build

    session = build(config(tiny, label_loss=0.0), tmp_path / "run", models_env)
    metrics = session.trainer.evaluate()
    validation, tokenizer = session.parts.validation, session.tokenizer
    predicted = Classifier(session.model.eval(), tokenizer, session.categories, 256).score_many(
        validation.texts)
    right = [p.label == label for p, label in zip(predicted, validation.labels)]
    assert metrics["eval_accuracy"] == pytest.approx(sum(right) / len(right))
    # its loss is still the run's own: the answer tokens'
    rows = encode_split(tokenizer, validation, session.categories, 256)
    with torch.no_grad():
        losses = [answer_only_loss(session.model, LeftPadCollator(tokenizer.pad_token_id)(
            rows[i:i + 4]))[0].item() * len(rows[i:i + 4]) for i in range(0, len(rows), 4)]
    assert metrics["eval_loss"] == pytest.approx(sum(losses) / len(rows), abs=1e-4)


def test_early_stopping_stops_and_publishes_the_best_checkpoint(tiny, tmp_path, models_env):
    from safetensors.torch import load_file

    # A learning rate too small to change any prediction: validation accuracy never beats the
    # first validation's, so step 2 stays best and training stops two validations later.
    cfg = config(tiny, name="tiny-early", learning_rate=1e-6, max_steps=40, eval_steps=2,
                 save_steps=2, early_stopping_patience=2)
    adapter = train(cfg, tmp_path / "run", models_env)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 6 and status["best_step"] == 2
    assert status["stop_reason"] == ("early stopping: no improvement in validation accuracy for "
                                     "2 evaluations at step 6; best step 2")
    meta = json.loads((adapter / ADAPTER_META).read_text())
    assert meta["steps"] == 6 and meta["best_step"] == 2
    checkpoints = tmp_path / "run" / "checkpoints"
    published = load_file(adapter / "adapter_model.safetensors")
    best = load_file(checkpoints / "checkpoint-2" / "adapter_model.safetensors")
    last = load_file(checkpoints / "checkpoint-6" / "adapter_model.safetensors")  # kept too
    assert published.keys() == best.keys()
    assert all(torch.equal(published[k], best[k]) for k in best)
    assert not all(torch.equal(published[k], last[k]) for k in last)


def test_a_time_limit_plans_the_steps_that_fit_from_the_measured_pace():
    from transformers import TrainerControl, TrainerState

    from core.lora.trainer import TimeLimit

    now = [0.0]
    limit = TimeLimit(1.0, clock=lambda: now[0])  # 60 s; every step below takes 10 s
    state, control = TrainerState(max_steps=100), TrainerControl()
    limit.on_train_begin(None, state, control)
    while not control.should_training_stop:
        now[0] += 10
        state.global_step += 1
        limit.on_step_end(None, state, control)
    assert state.global_step == state.max_steps == 6 and limit.planned == 100


def test_a_run_over_its_time_limit_stops_says_so_and_its_schedule_ends_at_the_new_last_step(
        tiny, tmp_path, models_env):
    from core.lora.trainer import build, stop_reason

    cfg = config(tiny, name="tiny-limit", max_steps=40, eval_steps=0, save_steps=0,
                 max_minutes=1e-5)  # under a millisecond: the pace of 3 steps leaves no room
    session = build(cfg, tmp_path / "run", models_env)
    session.trainer.train()
    assert session.trainer.state.global_step == 3
    assert stop_reason(session.trainer, cfg, False) == (
        "time limit: 1e-05 minutes allowed 3 of 40 steps")
    decay = session.trainer.lr_scheduler.lr_lambdas[0]
    assert decay(2) == pytest.approx(1 / 3) and decay(3) == 0.0  # planned: 40 steps
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["max_steps"] == 3 and status["planned_steps"] == 40  # the Train step says so


def test_without_a_time_limit_the_schedule_is_hugging_faces(tiny, tmp_path, models_env):
    from core.lora.trainer import build

    session = build(config(tiny, max_steps=4, eval_steps=0, save_steps=0), tmp_path / "run",
                    models_env)
    session.trainer.train()
    assert session.trainer.state.global_step == 4
    assert type(session.trainer.lr_scheduler).__name__ == "LambdaLR"  # HF's linear one
    assert not any(type(c).__name__ == "TimeLimit"
                   for c in session.trainer.callback_handler.callbacks)


def test_a_crashed_early_stopping_run_resumes_with_its_best_checkpoint_and_patience(
        tiny, tmp_path, models_env):
    def crash(row: dict) -> None:
        if row["step"] == 5:
            raise RuntimeError("power cut")

    cfg = config(tiny, name="tiny-crash", learning_rate=1e-6, max_steps=40, eval_steps=2,
                 save_steps=2, early_stopping_patience=2)
    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg, tmp_path / "run", models_env, on_metrics=crash)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert {c.name for c in checkpoints.iterdir()} == {"checkpoint-2", "checkpoint-4"}
    # step 4 was the first validation without improvement: one more ends the run
    adapter = train(cfg, tmp_path / "run", models_env, resume=True)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["step"] == 6 and status["best_step"] == 2
    assert status["stop_reason"].startswith("early stopping")
    assert json.loads((adapter / ADAPTER_META).read_text())["best_step"] == 2


def test_early_stopping_needs_a_checkpoint_at_validations():
    with pytest.raises(ValueError, match="early stopping needs eval_steps > 0"):
        TrainConfig(early_stopping_patience=3, eval_steps=20, save_steps=30)
    assert from_preset("quick").early_stopping_patience == 0
    assert from_preset("balanced").early_stopping_patience > 0
    # a federated client never validates, nor cuts a round short, whichever preset it starts from
    from core.lora.federation import Federation

    assert from_preset("balanced").max_minutes > 0
    client = Federation(name="fed", preset="balanced").train_config("d.csv")
    assert client.eval_steps == 0 and client.early_stopping_patience == 0
    assert client.max_minutes == 0


def test_config_round_trip_and_presets(tmp_path):
    cfg = from_preset("balanced", name="run-x", data="d.csv")
    assert cfg.r == 16 and cfg.alpha == 32 and "down_proj" in cfg.target_modules
    cfg.save(tmp_path / "run.yaml")
    assert TrainConfig.load(tmp_path / "run.yaml") == cfg
    (tmp_path / "bad.yaml").write_text("rank: 4\n")
    with pytest.raises(ValueError, match="unknown settings rank"):
        TrainConfig.load(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="preset must be one of quick, balanced, thorough"):
        from_preset("huge")


def test_cli_train_writes_run_and_adapter(tiny, studio_env, tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    models = tmp_path / "models"
    models.mkdir()
    (models / "registry.toml").write_text((PROJECT_ROOT / "models" / "registry.toml").read_text())
    out = subprocess.run(
        [sys.executable, "-m", "core", "train", "--data", str(SAMPLE_DATASET), "--base", str(tiny),
         "--preset", "quick", "--name", "cuad-tiny", "--max-steps", "4", "--json"],
        cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "STUDIO_MODELS_DIR": str(models)})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["adapter"] == str(models / "adapters" / "cuad-tiny")
    assert set(result["test"]) == {"adapter", "zero_shot", "baseline", "tfidf"}
    assert [row["train_examples"] for row in result["learning_curve"]] == [48]
    assert "step 4 · epoch" in out.stdout  # progress lines before the result
    assert (models / "adapters" / "cuad-tiny" / "adapter_model.safetensors").is_file()
    assert (studio_env / "runs" / "cuad-tiny" / "config.yaml").is_file()


def test_settings_are_declared_once_with_bounds_that_the_cli_and_checks_share():
    import dataclasses
    import subprocess
    import sys

    from core.errors import InputError
    from core.lora.config import TrainConfig
    from core.settings import PROJECT_ROOT

    with pytest.raises(InputError, match="r must be between 1 and 256, got 0"):
        TrainConfig(name="run-x", r=0)
    with pytest.raises(InputError, match="split: three shares"):
        TrainConfig(name="run-x", split=[0.5, 0.2])
    help_text = subprocess.run([sys.executable, "-m", "core", "train", "--help"],
                               capture_output=True, text=True, cwd=PROJECT_ROOT).stdout
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in help_text  # every setting is a flag
    refused = subprocess.run([sys.executable, "-m", "core", "train", "--name", "run-x",
                              "--data", "d.csv", "--learning-rate", "5"],
                             capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == "error: learning_rate must be between 1e-06 and 0.1, got 5.0"


def test_a_small_training_set_keeps_no_profile_of_its_documents(tiny, tmp_path, models_env):
    """Under familiarity.MIN_DOCUMENTS training documents the floor would be the least close of
    a handful: the adapter says nothing about likeness rather than something noisy."""
    rows = ["text,label"] + [f"document {i} about {kind},{kind}" for kind in ("cats", "dogs")
                             for i in range(8)]
    data = tmp_path / "small.csv"
    data.write_text("\n".join(rows) + "\n")
    adapter = train(config(tiny, name="small-run", data=str(data), max_steps=4, eval_steps=4,
                           save_steps=4), tmp_path / "run", models_env)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert familiarity.load(adapter) is None

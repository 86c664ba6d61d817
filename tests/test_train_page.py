"""AppTest for each step of the training wizard, with a tiny random model for the real run."""

import json
import os
import time
from dataclasses import asdict

import pytest

from core.files import write_json
from core.formats import local_time
from core.lora import runs
from core.lora.adapters import AdapterMeta
from core.lora.config import TrainConfig
from core.lora.estimate import Calibration, model_size
from core.lora.evaluate import metrics
from core.samples import SAMPLE_DATASET
from core.settings import load_settings
from tests.conftest import button, markdown, train_page
from tests.tiny import tiny_causal_lm


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("tiny"))


def test_step2_exact_parameters_and_presets(studio_env, models_env, tiny):
    at = train_page()
    button(at, "Next: model and LoRA settings").click().run()
    at.selectbox(key="train-base").set_value("Other: Hugging Face id or folder").run()
    at.text_input(key="train-base-other").set_value(str(tiny)).run()
    assert not at.exception
    expected = model_size(TrainConfig(base=str(tiny), **{
        k: at.session_state["train-config"][k] for k in ("r", "target_modules")}), models_env)
    assert at.metric[0].value == f"{expected.trainable:,}"
    at.segmented_control(key="train-preset").set_value("balanced").run()
    assert at.number_input(key="cfg-r").value == 16
    assert "down_proj" in at.multiselect(key="cfg-target_modules").value
    bigger = model_size(TrainConfig(base=str(tiny), r=16, target_modules=at.multiselect(
        key="cfg-target_modules").value), models_env)
    assert at.metric[0].value == f"{bigger.trainable:,}"
    assert at.number_input(key="cfg-r").proto.help  # every field explains itself
    # a classification head over the sample's five labels (64 wide) adds to the count
    assert at.radio(key="train-adapter-type").value == "generative"
    at.radio(key="train-adapter-type").set_value("classifier").run()
    assert at.session_state["train-config"]["adapter_type"] == "classifier"
    assert at.number_input(key="cfg-learning_rate").value == 2e-4  # the head's own
    assert at.number_input(key="cfg-epochs").value == 2.0
    assert at.metric[0].value == f"{bigger.trainable + 64 * 5:,}"


@pytest.mark.slow
def test_step3_to_5_train_follow_evaluate_save(studio_env, models_env, tiny):
    at = train_page()
    button(at, "Next: model and LoRA settings").click().run()
    at.selectbox(key="train-base").set_value("Other: Hugging Face id or folder").run()
    at.text_input(key="train-base-other").set_value(str(tiny)).run()
    at.number_input(key="cfg-max_steps").set_value(4).run()
    at.number_input(key="cfg-max_length").set_value(256).run()
    button(at, "Next: train").click().run()
    at.text_input(key="train-name").set_value("wizard-run").run()
    button(at, "Start training").click().run()
    assert not at.exception
    folder = runs.RunFolder(studio_env / "runs" / "wizard-run")
    deadline = time.time() + 300
    while folder.status().get("state") not in ("finished", "failed"):
        assert time.time() < deadline, folder.log_tail()
        time.sleep(2)
    assert folder.status()["state"] == "finished", folder.log_tail()
    at.run()
    assert "**finished** · step 4 of 4" in at.get("progress")[0].proto.text
    assert at.get("plotly_chart")
    assert "step 4 · epoch" in at.code[0].value  # the log tail

    button(at, "See the evaluation").click().run()
    assert not at.exception
    titles = [m.label for m in at.metric]
    assert titles == ["LoRA adapter", "Base model, zero-shot", "Embeddings + logistic regression",
                      "TF-IDF + linear SVM"]
    assert "test split** (6 examples" in markdown(at)
    assert any("has 48 examples, fewer than the curve's smallest size" in c.value
               for c in at.caption)  # the sample's training split: no learning curve to draw

    button(at, "Next: save").click().run()
    assert not at.exception
    assert any(str(models_env / "adapters" / "wizard-run") in s.value for s in at.success)
    at.text_input(key="copy-name").set_value("wizard-copy")  # in a form: sent with the submit
    at.button(key="save-copy-button").click().run()
    assert (models_env / "adapters" / "wizard-copy" / "adapter_model.safetensors").is_file()


def test_step2_estimate_says_what_it_assumes(studio_env, models_env, tiny):
    at = train_page()
    button(at, "Next: model and LoRA settings").click().run()
    at.selectbox(key="train-base").set_value("Other: Hugging Face id or folder").run()
    at.text_input(key="train-base-other").set_value(str(tiny)).run()
    key = json.dumps(asdict(TrainConfig(**at.session_state["train-config"])), sort_keys=True)
    at.session_state["calibration"] = {key: Calibration(2.5, 2**30, 160, 400.0)}
    at.run()
    assert not at.exception
    assert "**≈ 6.7 min** for 160 steps" in markdown(at)
    assumption = "\n".join(c.value for c in at.caption)
    assert "3 real training steps just now" in assumption and "idle" in assumption
    assert "ETA follows the run's own recent steps" in assumption
    assert not at.info  # Quick's 15 minutes hold all 6.7

    at.session_state["calibration"] = {key: Calibration(10.0, 2**30, 160, 1600.0)}
    at.run()
    assert [i.value for i in at.info] == [
        "The time limit of 15 min allows about 90 of the 160 steps (56% of the planned "
        "training): the run plans that many once its first steps show the pace. Raise **Max "
        "minutes** under Advanced to train on everything."]


def test_step3_eta_says_which_steps_it_comes_from(studio_env, models_env):
    config = TrainConfig(name="busy-run", data=str(SAMPLE_DATASET))
    folder = runs.run_dir(load_settings(), config.name)
    folder.path.mkdir(parents=True)
    config.save(folder.config_path)
    folder.update_status(state="running", step=30, max_steps=100, eta_s=420.0, eta_steps=10)
    write_json(runs.runs_dir(load_settings()) / runs.LOCK, {"name": "busy-run",
                                                             "pid": os.getpid()})
    at = train_page()
    # The wizard opens at the run that is training, not at step 1.
    assert at.segmented_control(key="train-step").value == "3 · Train"
    assert at.session_state["train-run"] == "busy-run"
    at.segmented_control(key="train-step").set_value("3 · Train").run()
    assert not at.exception
    assert at.get("progress")[0].proto.text == (
        "**running** · step 30 of 100 · about 7.0 min left (ETA from the last 10 steps)")
    folder.update_status(max_steps=60, planned_steps=100)  # a time limit moved the last step
    at.run()
    assert at.get("progress")[0].proto.text == (
        "**running** · step 30 of 60 · about 7.0 min left (ETA from the last 10 steps) · the "
        "time limit fits 60 of 100 planned steps")


def test_step3_a_starting_run_can_be_cancelled(studio_env, models_env):
    config = TrainConfig(name="slow-start", data=str(SAMPLE_DATASET))
    folder = runs.run_dir(load_settings(), config.name)
    folder.path.mkdir(parents=True)
    config.save(folder.config_path)
    folder.update_status(state="starting")
    lock = runs.runs_dir(load_settings()) / runs.LOCK
    write_json(lock, {"name": "slow-start", "pid": os.getpid()})
    at = train_page()
    assert [b.label for b in at.button if b.label in ("Stop", "Cancel")] == ["Cancel"]
    button(at, "Cancel").click().run()
    assert folder.stop_requested()
    assert button(at.run(), "Cancel").disabled  # asked once is enough
    # the training process sees the request once its model has loaded, and ends
    folder.update_status(state=runs.CANCELLED, stop_reason="cancelled before its first step")
    lock.unlink()
    at.run()
    assert not at.exception
    assert any("nothing was trained" in i.value for i in at.info)
    assert not [b for b in at.button if b.label in ("Stop", "Cancel", "Resume")]


def test_step2_early_stopping_is_advanced_and_off_for_quick(studio_env, models_env, tiny):
    at = train_page()
    button(at, "Next: model and LoRA settings").click().run()
    at.selectbox(key="train-base").set_value("Other: Hugging Face id or folder").run()
    at.text_input(key="train-base-other").set_value(str(tiny)).run()
    assert at.number_input(key="cfg-early_stopping_patience").value == 0
    assert at.selectbox(key="cfg-best_metric").options == ["accuracy", "loss"]
    at.segmented_control(key="train-preset").set_value("balanced").run()
    assert at.number_input(key="cfg-early_stopping_patience").value == 3
    at.selectbox(key="cfg-best_metric").set_value("loss").run()
    assert at.session_state["train-config"]["best_metric"] == "loss"
    at.number_input(key="cfg-save_steps").set_value(30).run()  # no checkpoint at validations
    assert "early stopping needs eval_steps > 0" in at.error[0].value
    assert not at.exception


def test_step3_says_why_a_run_stopped_and_marks_the_best_validation(studio_env, models_env):
    config = TrainConfig(name="early-run", data=str(SAMPLE_DATASET), early_stopping_patience=2)
    folder = runs.run_dir(load_settings(), config.name)
    folder.path.mkdir(parents=True)
    config.save(folder.config_path)
    for step, loss, accuracy in ((20, 1.2, 0.5), (40, 1.0, 0.8), (60, 1.1, 0.7), (80, 1.3, 0.7)):
        folder.append_metrics({"step": step, "epoch": step / 40, "time": step, "loss": loss})
        folder.append_metrics({"step": step, "epoch": step / 40, "time": step,
                               "eval_loss": loss, "eval_accuracy": accuracy})
    reason = ("early stopping: no improvement in validation accuracy for 2 evaluations at step "
              "80; best step 40")
    folder.update_status(state="finished", step=80, max_steps=200, best_step=40,
                         stop_reason=reason)
    at = train_page()
    assert at.segmented_control(key="train-step").value == "3 · Train"  # its newest run, ended
    assert not at.exception
    assert f"Training ended — {reason}." in [c.value for c in at.caption]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [trace.get("name") for trace in figure["data"]]
    assert "validation accuracy" in names
    best = figure["data"][names.index("best (step 40)")]
    assert best["x"] == [40] and best["y"] == [1.0]


def test_step4_draws_the_baselines_learning_curve_and_the_adapter_at_all(studio_env, models_env):
    truth = ["A", "B", "A", "B"]

    def result(*predicted: str) -> dict:
        return metrics(truth, list(predicted), ["A", "B"]) | {"seconds": 1.0, "misclassified": []}

    curve = [{"train_examples": 50, "baseline": 0.5, "tfidf": 0.25},
             {"train_examples": 100, "baseline": 0.75, "tfidf": 0.5},
             {"train_examples": 120, "baseline": 0.75, "tfidf": 0.75}]
    evaluation = {"adapter": result("A", "B", "A", "B"), "zero_shot": result("A", "A", "A", "A"),
                  "baseline": result("A", "B", "B", "B"), "tfidf": result("A", "B", "B", "A"),
                  "test_size": 4, "learning_curve": curve}
    folder = runs.run_dir(load_settings(), "curve-run")
    folder.path.mkdir(parents=True)
    folder.write_evaluation(evaluation)
    folder.update_status(state="finished", step=10, max_steps=10)
    at = train_page()
    assert at.segmented_control(key="train-step").value == "4 · Evaluate"
    assert not at.exception
    assert "Learning curve" in [h.value for h in at.subheader]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = {trace["name"]: trace for trace in figure["data"]}
    assert lines["Embeddings + logistic regression"]["y"] == [0.5, 0.75, 0.75]
    assert lines["TF-IDF + linear SVM"]["x"] == [50, 100, 120]
    assert lines["LoRA adapter"]["x"] == [120] and lines["LoRA adapter"]["y"] == [1.0]
    assert figure["layout"]["xaxis"]["ticktext"] == ["50", "100", "all (120)"]
    [caption] = [c.value for c in at.caption if "Each baseline" in c.value]
    assert "on 50, 100 and all 120 training examples" in caption
    assert "The adapter is one point" in caption

    assert len(at.get("plotly_chart")) == 3  # and the two confusion matrices

    few = [{"train_examples": 40, "baseline": 0.75, "tfidf": 0.75}]  # the curve's "all" alone
    folder.write_evaluation(evaluation | {"learning_curve": few})
    at.run()
    assert not at.exception and len(at.get("plotly_chart")) == 2
    assert any("has 40 examples, fewer than the curve's smallest size (50)" in c.value
               for c in at.caption)


def test_a_reload_opens_the_newest_run_at_its_evaluation(studio_env, models_env):
    """A new session (a reload) opens the wizard where the work is: the newest run, at step 4
    once it is evaluated (a running or unevaluated one opens at step 3, tests above)."""
    for name, evaluated in (("older-run", False), ("newer-run", True)):
        folder = runs.run_dir(load_settings(), name)
        folder.path.mkdir(parents=True)
        TrainConfig(name=name, data=str(SAMPLE_DATASET), learning_rate=7e-4).save(
            folder.config_path)
        folder.update_status(state="finished", step=10, max_steps=10)
        if evaluated:
            scores = metrics(["A", "B"], ["A", "A"], ["A", "B"]) | {"seconds": 1.0}
            folder.write_evaluation({"adapter": scores | {"misclassified": []},
                                     "zero_shot": scores, "test_size": 2})
        time.sleep(0.01)  # the newest by its status's time
    at = train_page()
    assert not at.exception
    assert at.segmented_control(key="train-step").value == "4 · Evaluate"
    assert at.session_state["train-run"] == "newer-run"
    assert next(b for b in at.selectbox if b.label == "Run").value == "newer-run"
    # and the wizard holds that run's settings, not the preset's under "my-classifier"
    assert at.session_state["train-config"]["name"] == "newer-run"
    assert at.session_state["train-config"]["learning_rate"] == 7e-4


def test_a_reload_keeps_the_runs_own_data_in_step_1_and_step_3_names_it(studio_env, models_env):
    """After a reload, a look at step 1 showed the sample dataset, and the run started next
    trained on the sample contracts instead of the user's upload, unsaid."""
    from core.uploads import save_content_addressed

    settings = load_settings()
    rows = "text,label\n" + "".join(f"story {i} of kind {i % 2},k{i % 2}\n" for i in range(8))
    data = save_content_addressed(settings.data_dir / "datasets", "bbc news.csv", rows.encode())
    folder = runs.run_dir(settings, "news")
    folder.path.mkdir(parents=True)
    TrainConfig(name="news", data=str(data)).save(folder.config_path)
    folder.update_status(state="finished", step=10, max_steps=10)
    at = train_page()
    at.segmented_control(key="train-step").set_value("1 · Data").run()
    assert not at.exception
    assert at.radio(key="train-source").value == "CSV or JSONL file"
    assert any("Using bbc news.csv, uploaded before" in c.value.replace("\\", "")
               for c in at.caption)
    assert at.session_state["train-config"]["data"] == str(data)
    at.segmented_control(key="train-step").set_value("3 · Train").run()
    assert any(c.value.replace("\\", "") == "Trains on **bbc news.csv** (text → label), 1 epoch(s) "
               "at most; change them in steps 1 and 2." for c in at.caption)  # no time limit


def test_step4_says_a_run_was_cut_short_by_its_time_limit(studio_env, models_env):
    folder = runs.run_dir(load_settings(), "cut")
    folder.path.mkdir(parents=True)
    TrainConfig(name="cut", data=str(SAMPLE_DATASET)).save(folder.config_path)
    folder.update_status(state="finished", step=49, max_steps=49,
                         stop_reason="time limit: 15 minutes allowed 49 of 60 steps")
    scores = metrics(["A", "B"], ["A", "A"], ["A", "B"]) | {"seconds": 1.0}
    folder.write_evaluation({"adapter": scores | {"misclassified": []}, "zero_shot": scores,
                             "test_size": 2})
    at = train_page()
    assert at.segmented_control(key="train-step").value == "4 · Evaluate"
    assert [i.value for i in at.info if "time limit" in i.value] == [
        "Training ended at its time limit (15 minutes allowed 49 of 60 steps): the adapter "
        "learnt from fewer steps than planned. A longer limit (step 2, Advanced) may score "
        "higher."]


def test_pace_follows_a_run_that_slows_down():
    pace = runs.Pace()
    assert pace.eta(100) is None  # nothing measured yet
    for step in range(1, 21):  # 1 s a step, then 3 s a step from step 11 on
        pace.add(step, step if step <= 10 else 10 + 3 * (step - 10))
    pace.add(20, 99.0)  # the evaluation's log at the same step
    assert pace.eta(100) == (240.0, 10)  # 80 steps at 3 s, not the average 2 s
    assert runs.Pace(step=50).eta(100) is None  # resumed: the steps before are not its pace


def test_step5_shows_a_date_and_percentages_not_raw_numbers(studio_env, models_env):
    created = 1796024989.008
    runs.run_dir(load_settings(), "done-run").path.mkdir(parents=True)
    runs.run_dir(load_settings(), "done-run").write_evaluation({"adapter": {"accuracy": 2 / 3}})
    adapter = models_env / "adapters" / "done-run"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    AdapterMeta(name="done-run", base="some-base", labels=["A", "B"], created=created,
                evaluation={"adapter": {"accuracy": 2 / 3}}, training_seconds=936.3, steps=49,
                dataset="/data/datasets/bbc news-e4ed6656a45d.csv").write(adapter)
    at = train_page()
    at.segmented_control(key="train-step").set_value("5 · Save").run()
    assert not at.exception
    # in words first: the numbers a person reads, the dataset under the name it was uploaded as
    assert [(m.label, m.value) for m in at.metric] == [
        ("Test accuracy", "67%"), ("Labels", "2"), ("Training", "16 min"), ("Steps", "49")]
    assert any(c.value.replace("\\", "").startswith("Trained on bbc news.csv from `some-base`")
               for c in at.caption)
    shown = json.loads(at.get("json")[0].proto.body)  # the details, for reproducing it
    assert shown["created"] == local_time(created) and shown["test accuracy"] == "67%"

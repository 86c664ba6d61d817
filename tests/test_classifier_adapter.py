"""The second adapter type: a classification head (PEFT SEQ_CLS) trained with LoRA on a tiny
random model, evaluated against the base model's own zero-shot, reloaded from the library, and
refused in words where only a generative adapter can serve."""

import json
import os
import subprocess
import sys

import pytest

from core.errors import InputError
from core.lora import adapter_ops, gguf_export
from core.lora.adapters import AdapterError, get, load_classifier
from core.lora.config import TrainConfig
from core.lora.estimate import model_size
from core.lora.trainer import train
from core.samples import SAMPLE_DATASET
from core.settings import PROJECT_ROOT
from tests.tiny import tiny_causal_lm

LABELS = ["Distributor", "Endorsement", "Hosting", "License", "Sponsorship"]
TEXTS = ["This Distributor Agreement appoints the company as exclusive distributor.",
         "The endorser grants the right to use their name and likeness."]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(models folder, run folder, the adapter's folder): 8 steps on the sample dataset."""
    from core.registry import linked_models_dir

    root = tmp_path_factory.mktemp("head")
    models = linked_models_dir(root / "models", PROJECT_ROOT / "models")
    base = tiny_causal_lm(root / "tiny")
    config = TrainConfig(name="tiny-head", data=str(SAMPLE_DATASET), base=str(base),
                         adapter_type="classifier", max_steps=8, batch_size=4,
                         learning_rate=5e-3, max_length=256, eval_steps=4, save_steps=4)
    return models, root / "run", train(config, root / "run", models)


def test_a_classifier_adapter_trains_is_evaluated_and_saved_with_its_head(trained):
    models, run, adapter = trained
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [4, 8]
    assert all(0 <= r["eval_accuracy"] <= 1 for r in rows if "eval_accuracy" in r)
    peft_config = json.loads((adapter / "adapter_config.json").read_text())
    assert peft_config["task_type"] == "SEQ_CLS" and "score" in peft_config["modules_to_save"]
    info = get(models, "tiny-head")
    assert info.meta.adapter_type == "classifier" and info.labels == LABELS
    evaluation = info.meta.evaluation
    assert set(evaluation) >= {"adapter", "zero_shot", "baseline", "tfidf"}
    for which in ("adapter", "zero_shot"):  # zero-shot: the base model's own label scoring
        assert sum(map(sum, evaluation[which]["confusion"])) == evaluation["test_size"]


def test_reloaded_from_the_library_it_gives_probabilities_over_its_labels(trained):
    models, _, _ = trained
    classifier = load_classifier(models, "tiny-head")
    one, two = classifier.score_many(TEXTS)
    for prediction in (one, two):
        assert list(prediction.scores) == LABELS
        assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.label == max(prediction.scores, key=prediction.scores.get)
    # a document scored alone and in a batch of unequal lengths (left padding) agree
    alone = classifier.score(TEXTS[1])
    assert alone.scores == pytest.approx(two.scores, abs=1e-4)


def test_what_only_a_generative_adapter_can_do_is_refused_in_words(trained):
    models, _, _ = trained
    classifier = load_classifier(models, "tiny-head")
    with pytest.raises(InputError, match="few-shot examples need a generative adapter"):
        classifier.score(TEXTS[0], examples=[(TEXTS[0], "Distributor"), (TEXTS[1], "Endorsement")])
    with pytest.raises(InputError, match="knows only the labels it was trained on"):
        classifier.score(TEXTS[0], labels=["Distributor", "Hosting"])
    with pytest.raises(InputError, match="does not write"):
        classifier.classify(TEXTS[0], mode="generate")
    with pytest.raises(AdapterError, match="cannot be exported to GGUF"):
        gguf_export.export(models, "tiny-head")
    with pytest.raises(AdapterError, match="cannot be merged"):
        adapter_ops.merge(models, "tiny-head")


def test_the_cli_trains_a_classifier_adapter_and_the_size_counts_its_head(tmp_path):
    tiny = tiny_causal_lm(tmp_path / "tiny")
    head = TrainConfig(name="size-check", data=str(SAMPLE_DATASET), base=str(tiny),
                       adapter_type="classifier")
    generative = TrainConfig(name="size-check", data=str(SAMPLE_DATASET), base=str(tiny))
    models = PROJECT_ROOT / "models"
    # the same LoRA layers, plus a 64 x 5 head in place of nothing
    assert model_size(head, models).trainable == model_size(generative, models).trainable + 64 * 5

    from core.registry import linked_models_dir

    linked = linked_models_dir(tmp_path / "models", models)
    out = subprocess.run(
        [sys.executable, "-m", "core", "train", "--data", str(SAMPLE_DATASET), "--base", str(tiny),
         "--preset", "quick", "--adapter-type", "classifier", "--name", "cli-head",
         "--max-steps", "2", "--json"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "STUDIO_MODELS_DIR": str(linked),
             "STUDIO_DATA_DIR": str(tmp_path / "data")})
    assert out.returncode == 0, out.stderr[-2000:]
    assert get(linked, "cli-head").meta.adapter_type == "classifier"


def test_the_api_serves_a_classifier_adapter_and_refuses_few_shot_with_it(
        trained, studio_env, monkeypatch):
    from fastapi.testclient import TestClient

    from core.api import create_app
    from core.settings import load_settings

    monkeypatch.setenv("STUDIO_MODELS_DIR", str(trained[0]))
    client = TestClient(create_app(load_settings()))
    body = client.post("/predict", json={"text": TEXTS[0], "adapter": "tiny-head"}).json()
    assert list(body["scores"]) == LABELS and body["label"] in LABELS
    refused = client.post("/predict_fewshot", json={
        "text": TEXTS[0], "adapter": "tiny-head",
        "examples": [{"document": TEXTS[0], "label": "Distributor"},
                     {"document": TEXTS[1], "label": "Endorsement"}]})
    assert refused.status_code == 422 and "need a generative adapter" in refused.text, refused.text


def test_the_classify_page_offers_a_classifier_adapter_only_what_it_can_do(
        trained, studio_env, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STUDIO_MODELS_DIR", str(trained[0]))
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    at = at.switch_page("app_pages/classify.py").run()
    at.selectbox(key="classify-model").set_value("tiny-head").run()
    shown = {w.key for w in [*at.segmented_control, *at.toggle]}
    assert not shown & {"classify-mode", "classify-fewshot", "classify-compare"}  # not offered
    at.text_area(key="classify-text").set_value(TEXTS[0]).run()
    at.slider(key="classify-threshold").set_value(0).run()
    at.button(key="classify-run").click().run()
    assert not at.exception and not at.error
    assert [m.value for m in at.metric][0] in LABELS

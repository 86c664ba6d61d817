"""AppTest for the Adapters page on a copy of a library of real (tiny) PEFT adapters."""

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core.lora import adapter_ops, familiarity
from core.lora.adapters import list_adapters
from core.settings import PROJECT_ROOT


@pytest.fixture
def models(studio_env, tiny_library, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(tiny_library, models, symlinks=True)
    shutil.copytree(models / "adapters" / "tiny-cuad", models / "adapters" / "tiny-twin")
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models))
    return models


def adapters_page() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    return at.switch_page("app_pages/adapters.py").run()


def names(models) -> set[str]:
    return {a.name for a in list_adapters(models)}


def test_table_details_rename_and_delete(models):
    at = adapters_page()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["name"]) == ["tiny-cuad", "tiny-twin"]
    assert set(table["r / alpha"]) == {"8 / 16"} and "problem" not in table  # none has one
    assert "Distributor, Endorsement, Hosting, License, Sponsorship" in \
        "\n".join(m.value for m in at.markdown)
    assert at.get("plotly_chart")  # the confusion matrix from its evaluation
    [told] = [c.value for c in at.caption if c.value.startswith("Tells documents unlike its 48 "
                                                                  "training documents")]
    # the kinds of documents it is told apart from: contracts are its own kind
    assert told.endswith(", or more like research papers or Wikipedia articles than they were).")
    (models / "adapters" / "tiny-twin" / familiarity.FILE).unlink()  # as one trained before
    at.selectbox(key="adapter-details").set_value("tiny-twin").run()
    assert any(c.value.startswith("Keeps no profile of its training documents")
               for c in at.caption)
    # made again from the dataset it was trained on: the same 48 documents
    at.button(key="profile-tiny-twin").click().run()
    assert [t.value for t in at.toast] == ["Profiled 48 training documents of tiny-twin"]
    assert told in [c.value for c in at.caption]
    assert "profile-tiny-twin" not in [b.key for b in at.button]  # nothing left to compare
    at.text_input(key="rename-adapter-tiny-twin").set_value("tiny-renamed").run()
    at.button(key="rename-button").click().run()
    assert names(models) == {"tiny-cuad", "tiny-renamed"}
    assert [t.value for t in at.toast] == ["Renamed tiny-twin to tiny-renamed"]
    at.selectbox(key="adapter-details").set_value("tiny-renamed").run()
    assert at.button(key="delete-button").disabled  # confirmation first
    at.checkbox(key="delete-sure-tiny-renamed").check().run()
    at.button(key="delete-button").click().run()
    assert not at.exception and names(models) == {"tiny-cuad"}
    assert [t.value for t in at.toast] == ["Deleted tiny-renamed"]
    # The next adapter is not one click from deletion: its confirmation starts unticked.
    assert not at.checkbox(key="delete-sure-tiny-cuad").value
    assert at.button(key="delete-button").disabled


def test_a_damaged_adapter_is_listed_with_its_problem(models):
    (models / "adapters" / "tiny-twin" / "adapter_model.safetensors").write_bytes(b"not weights")
    at = adapters_page()
    assert not at.exception
    table = at.dataframe[0].value
    problems = dict(zip(table["name"], table["problem"]))
    assert problems["tiny-cuad"] == "" and "safetensors" in problems["tiny-twin"]


def test_import_a_zip_and_a_refused_one(models):
    data = adapter_ops.export_zip(models, "tiny-cuad")
    at = adapters_page()
    at.file_uploader(key="adapter-zip").set_value([("tiny.zip", data, "application/zip")]).run()
    at.text_input(key="import-name").set_value("tiny-imported").run()
    at.button(key="import-button").click().run()
    assert not at.exception and "tiny-imported" in names(models)
    at.file_uploader(key="adapter-zip").set_value([("junk.zip", b"nope", "application/zip")]).run()
    at.text_input(key="import-name").set_value("junk").run()
    at.button(key="import-button").click().run()
    assert any(e.value == "junk.zip: not a ZIP file" for e in at.error)


def test_combine_and_merge(models):
    at = adapters_page()
    at.multiselect(key="combine-names").set_value(["tiny-cuad", "tiny-twin"]).run()
    at.text_input(key="combine-name").set_value("tiny-mean").run()
    at.button(key="combine-button").click().run()
    assert not at.exception and "tiny-mean" in names(models)
    at.selectbox(key="merge-name").set_value("tiny-cuad").run()
    at.button(key="merge-button").click().run()
    assert any("outputs match the adapter's" in x.value for x in at.success)
    assert (models / "merged" / "tiny-cuad" / "config.json").is_file()


def test_compare_two_adapters_on_one_test_set(models):
    at = adapters_page()
    at.multiselect(key="compare-names").set_value(["tiny-cuad", "tiny-twin"]).run()
    at.button(key="compare-button").click().run()
    assert not at.exception
    assert [m.label for m in at.metric] == ["tiny-cuad", "tiny-twin"]
    # the same adapter copied: the same answers on the same test split
    assert at.metric[0].value == at.metric[1].value


def test_a_federated_adapter_shows_accuracy_per_round(models):
    import json

    meta_path = models / "adapters" / "tiny-twin" / "studio-adapter.json"
    meta = json.loads(meta_path.read_text())
    meta["federated"] = {
        "config": {"clients": 2, "split": "iid", "rounds": 2, "local_steps": 4},
        "shards": [24, 24], "rounds": [{"round": r, "accuracy": a, "loss": 1.0, "clients": []}
                                       for r, a in ((0, 0.2), (1, 0.4), (2, 0.6))],
        "centralised": [{"round": 1, "accuracy": 0.5}, {"round": 2, "accuracy": 0.7}]}
    meta["evaluation"] = {"test_size": 6, "adapter": {"accuracy": 0.6, "macro_f1": 0.5}}
    meta_path.write_text(json.dumps(meta))
    at = adapters_page()
    at.selectbox(key="adapter-details").set_value("tiny-twin").run()
    assert not at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "**Federated**: 2 clients (iid split, 24, 24 examples), 2 rounds of 4 steps" in text
    assert "Test accuracy **60%** on 6 examples" in text
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in figure["data"]] == ["federated (global adapter)",
                                                   "centralised (pooled data)"]


def test_gguf_export_failure_is_shown_not_raised(models):
    # tiny-cuad's base has a BERT tokenizer under a Llama config: the converter writes it, but
    # llama.cpp refuses to load it. The page must say so (tests/test_gguf_export.py covers
    # exports that work).
    at = adapters_page()
    at.selectbox(key="gguf-name").set_value("tiny-cuad").run()
    at.button(key="gguf-button").click().run()
    assert not at.exception
    assert any("llama-cpp-python cannot load" in e.value for e in at.error)


def test_the_learning_curve_of_its_evaluation(models):
    import json

    meta_path = models / "adapters" / "tiny-twin" / "studio-adapter.json"
    meta = json.loads(meta_path.read_text())
    meta["evaluation"] = {
        "test_size": 30, "adapter": {"accuracy": 0.9, "macro_f1": 0.9},
        "baseline": {"accuracy": 0.8, "macro_f1": 0.8}, "tfidf": {"accuracy": 0.7, "macro_f1": 0.7},
        "learning_curve": [{"train_examples": 50, "baseline": 0.5, "tfidf": 0.4},
                           {"train_examples": 120, "baseline": 0.8, "tfidf": 0.7}]}
    meta_path.write_text(json.dumps(meta))
    at = adapters_page()
    at.selectbox(key="adapter-details").set_value("tiny-twin").run()
    assert not at.exception
    curves = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
              if "training examples" in c.proto.spec]
    assert len(curves) == 1
    traces = {t["name"]: t for t in curves[0]["data"]}
    assert traces["Embeddings + logistic regression"]["y"] == [0.5, 0.8]
    assert traces["LoRA adapter"]["x"] == [120]
    assert any("a line still rising at the right" in c.value for c in at.caption)

    # too few training examples for a curve: said, not silently left out
    meta["evaluation"]["learning_curve"] = [{"train_examples": 48, "baseline": 0.8, "tfidf": 0.7}]
    meta_path.write_text(json.dumps(meta))
    at = adapters_page()
    at.selectbox(key="adapter-details").set_value("tiny-twin").run()
    assert not at.exception
    assert any("has 48 examples, fewer than the curve's smallest size" in c.value
               for c in at.caption)

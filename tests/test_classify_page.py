"""AppTest for the Classify page: a tiny trained adapter, and a real small base model."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.settings import PROJECT_ROOT

LABELS = {"Distributor", "Endorsement", "Hosting", "License", "Sponsorship"}
TEXT = "The Company appoints the Distributor as its exclusive distributor in the Territory."


@pytest.fixture
def library(studio_env, tiny_library, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tiny_library))
    return tiny_library


def classify_page() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    return at.switch_page("app_pages/classify.py").run()


def test_paste_text_label_scores_prompt_and_comparison(library):
    at = classify_page()
    assert not at.exception
    assert at.selectbox(key="classify-model").value == "tiny-cuad"
    # never disabled (a pasted text reaches the page with the click itself); with nothing to
    # classify a click says so and classifies nothing
    at.button(key="classify-run").click().run()
    assert "Add a document to classify." in [i.value for i in at.info] and not at.metric
    at.text_area(key="classify-text").set_value(TEXT).run()
    at.slider(key="classify-threshold").set_value(0).run()  # a tiny random model is never sure
    at.toggle(key="classify-compare").set_value(True).run()
    at.button(key="classify-run").click().run()
    assert not at.exception
    labels = [m.value for m in at.metric]
    assert len(labels) == 2 and set(labels) <= LABELS  # the adapter and the base alone
    assert len(at.get("plotly_chart")) == 2
    prompts = [c.value for c in at.code]
    assert all("Valid categories: Distributor, Endorsement" in p and TEXT in p for p in prompts)


def test_many_files_table_distribution_downloads_and_a_bad_file(library):
    at = classify_page()
    at.radio(key="classify-source").set_value("Upload files").run()
    at.file_uploader(key="classify-files").set_value([
        ("one.txt", TEXT.encode(), "text/plain"),
        ("two.md", b"# Hosting\nThe provider hosts the website.", "text/markdown"),
        ("empty.txt", b"", "text/plain")]).run()
    at.toggle(key="classify-compare").set_value(True).run()
    at.button(key="classify-run").click().run()
    assert not at.exception
    assert any(e.value.startswith("empty.txt: the file is empty") for e in at.error)
    # The comparison is made for one document: said, not silently left out
    assert [i.value for i in at.info] == [
        "The comparison with the base model alone is made for one document at a time."]
    table = at.dataframe[0].value
    assert list(table.columns[:3]) == ["file", "label", "probability"]  # the answer up front
    assert list(table["file"]) == ["one.txt", "two.md"]
    assert table["probability"].between(0, 100).all()  # shown in whole percents
    assert "**2 of 3 documents classified**" in "\n".join(m.value for m in at.markdown)
    assert not at.get("progress")  # said once, under the results, not also by the bar
    assert len(at.get("download_button")) == 2
    # The threshold applies to the results as they are, without classifying again.
    at.slider(key="classify-threshold").set_value(0).run()
    assert set(at.dataframe[0].value["label"]) <= LABELS
    at.slider(key="classify-threshold").set_value(100).run()
    table = at.dataframe[0].value
    assert set(table["label"]) == {"none of these"}
    assert all(note.startswith("likeliest: ") for note in table["note"])


def test_pasted_text_survives_a_look_at_another_source(library):
    at = classify_page()
    at.text_area(key="classify-text").set_value(TEXT).run()
    at.radio(key="classify-source").set_value("Upload files").run()
    at.radio(key="classify-source").set_value("Paste text").run()
    assert at.text_area(key="classify-text").value == TEXT
    assert "Add a document to classify." not in [i.value for i in at.info]


def test_a_document_below_the_threshold_is_none_of_these(library):
    at = classify_page()
    at.text_area(key="classify-text").set_value(TEXT).run()
    at.slider(key="classify-threshold").set_value(100).run()
    at.button(key="classify-run").click().run()
    assert not at.exception
    assert at.metric[0].value == "none of these"
    assert at.metric[0].delta.startswith("likeliest: ")
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {a["text"] for a in chart["layout"]["annotations"]} == {"chance 20%", "threshold 100%"}
    at.slider(key="classify-threshold").set_value(0).run()
    assert at.metric[0].value in LABELS


def test_generate_mode_reports_an_unparsed_answer(library, tmp_path, monkeypatch):
    """Offered only for an adapter taught to write its answer: the presets teach the label
    choice alone (label loss 1), as the tiny one was, and a Quick one wrote "1.\n\n2." """
    import shutil

    from core.lora.adapters import read_meta

    at = classify_page()
    assert not [c for c in at.segmented_control if c.key == "classify-mode"]
    assert any("label loss 100%" in c.value for c in at.caption)
    models = tmp_path / "models"
    shutil.copytree(library, models, symlinks=True)
    meta = read_meta(models / "adapters" / "tiny-cuad")
    meta.config["label_loss"] = 0.5
    meta.write(models / "adapters" / "tiny-cuad")
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models))
    at = classify_page()
    at.segmented_control(key="classify-mode").set_value("generate").run()
    at.text_area(key="classify-text").set_value(TEXT).run()
    at.button(key="classify-run").click().run()
    assert not at.exception
    assert any(e.value.startswith("No label: the model") for e in at.error)


@pytest.mark.slow
def test_base_model_alone_with_typed_labels(library):
    at = classify_page()
    at.selectbox(key="classify-model").set_value("Base model alone (no adapter)").run()
    at.selectbox(key="classify-base").set_value("smollm2-135m-instruct").run()
    at.text_area(key="classify-text").set_value("Invoice no. 42: amount due 300 EUR by May 1.").run()
    at.button(key="classify-run").click().run()
    assert "Give at least two labels." in [i.value for i in at.info] and not at.metric
    at.text_input(key="classify-labels").set_value("Invoice, Love letter").run()
    at.button(key="classify-run").click().run()
    assert not at.exception
    assert at.metric[0].value in {"Invoice", "Love letter"}


def test_a_document_unlike_the_training_documents_is_said_to_be_a_guess(library):
    news = ("Manchester United won 3-1 at Anfield on Sunday, with two goals in the last ten "
            "minutes. The manager said the squad had shown character after a poor run of form.")
    at = classify_page()
    at.text_area(key="classify-text").set_value(news).run()
    at.button(key="classify-run").click().run()
    assert not at.exception
    [warning] = [w.value for w in at.warning if "Unlike the documents" in w.value]
    assert "guess" in warning and "below the" in warning
    assert at.metric[0].delta.endswith("among its labels, a guess")  # not a bare "99%"
    import pandas as pd

    from core.samples import SAMPLE_DATASET

    contract = pd.read_csv(SAMPLE_DATASET)["text"][0]  # one it was trained on
    at.text_area(key="classify-text").set_value(contract).run()
    at.button(key="classify-run").click().run()
    assert not [w for w in at.warning if "Unlike the documents" in w.value]
    assert any("Like the documents it was trained on" in c.value for c in at.caption)

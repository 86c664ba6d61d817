"""AppTest for the training wizard's first step: the sample dataset, uploads of tables and of
folders by label, and what is said of bad data."""

import io
import zipfile

from tests.conftest import button, markdown, train_page


def test_step1_sample_dataset_shows_labels_and_split(studio_env, models_env):
    at = train_page()
    assert not at.exception
    assert "5 labels" in markdown(at) and "train **48** · validation **6** · test **6**" in markdown(at)
    assert at.get("plotly_chart")
    at.number_input(key="split-Train %").set_value(70).run()
    assert any("add up to 90%" in e.value for e in at.error)
    at.number_input(key="split-Test %").set_value(20).run()
    assert "train **42**" in markdown(at)
    button(at, "Next: model and LoRA settings").click().run()
    assert at.segmented_control(key="train-step").value == "2 · Model"


def test_step1_bad_csv_is_explained_and_blocks_the_next_step(studio_env, models_env):
    at = train_page()
    at.radio(key="train-source").set_value("CSV or JSONL file").run()
    rows = "text,label\n" + "".join(f"contract number {i},A\n" for i in range(6)) + \
        "contract number 0,A\nlonely text,B\n,A\n"
    at.file_uploader(key="train-table").set_value(
        [("../my data.csv", rows.encode(), "text/csv")]).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("fewer than 3 examples" in e and "B (1)" in e for e in errors)
    warnings = [w.value for w in at.warning]
    assert any("1 row(s) with an empty text" in w for w in warnings)
    assert any("1 duplicate text(s)" in w for w in warnings)
    assert button(at, "Next: model and LoRA settings").disabled
    [stored] = (studio_env / "datasets").iterdir()  # kept inside, under a content-addressed name
    assert stored.name.startswith("my data-") and stored.suffix == ".csv"


def test_step1_an_unreadable_upload_is_refused_and_not_kept(studio_env, models_env):
    at = train_page()
    at.radio(key="train-source").set_value("CSV or JSONL file").run()
    at.file_uploader(key="train-table").set_value(
        [("notes.jsonl", b'{"text": "a", "label": \n not json', "application/json")]).run()
    assert not at.exception
    assert any(e.value.startswith("notes.jsonl: not a readable JSONL file") for e in at.error)
    assert not list((studio_env / "datasets").iterdir())  # nothing could ever use it
    assert "train-upload-kept" not in at.session_state


def test_step1_keeps_an_upload_when_the_user_comes_back_and_names_it_in_errors(studio_env,
                                                                             models_env):
    """Coming back to step 1 met the sample dataset again, which then replaced the upload in
    the run's settings unseen; and errors named the stored copy ("contracts-2331ea603816.csv")."""
    at = train_page()
    at.radio(key="train-source").set_value("CSV or JSONL file").run()
    rows = "text,label\n" + "".join(f"contract {i} of kind {i % 2},k{i % 2}\n" for i in range(8))
    at.file_uploader(key="train-table").set_value(
        [("contracts.csv", rows.encode(), "text/csv")]).run()
    assert not at.exception and "2 labels" in markdown(at)
    button(at, "Next: model and LoRA settings").click().run()
    assert at.segmented_control(key="train-step").value == "2 · Model"
    at.segmented_control(key="train-step").set_value(None).run()  # a click on itself deselects
    assert at.segmented_control(key="train-step").value == "2 · Model"
    at.segmented_control(key="train-preset").set_value(None).run()  # so does the preset's
    assert at.segmented_control(key="train-preset").value == "quick"
    at.segmented_control(key="train-step").set_value("1 · Data").run()
    assert at.radio(key="train-source").value == "CSV or JSONL file"
    assert any("Using contracts.csv, uploaded before" in c.value.replace("\\", "")
               for c in at.caption)
    assert at.session_state["train-config"]["data"].endswith(".csv")
    assert "contracts-" in at.session_state["train-config"]["data"]
    at.selectbox(key=next(k.key for k in at.selectbox if k.key.startswith("label-col"))) \
        .set_value("text").run()
    assert [e.value for e in at.error] == [
        "contracts.csv: the text and the label are both the column 'text'; choose the column "
        "that holds each example's category as the label."]
    # A table with a header and no rows is said to be that, under its own name
    at.file_uploader(key="train-table").set_value(
        [("empty rows.csv", b"text,label\n", "text/csv")]).run()
    assert any(e.value.startswith("empty rows.csv: no examples") for e in at.error)


def test_step1_zip_of_label_folders(studio_env, models_env):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("invoice", "letter"):
            for i in range(3):
                archive.writestr(f"docs/{label}/{i}.txt", f"This {label} is number {i}.")
        archive.writestr("docs/letter/empty.txt", "")
    at = train_page()
    at.radio(key="train-source").set_value("ZIP of folders, one per label").run()
    at.file_uploader(key="train-zip").set_value([("docs.zip", buffer.getvalue(),
                                                  "application/zip")]).run()
    assert not at.exception
    assert any("docs/letter/empty.txt: the file is empty" in w.value for w in at.warning)
    assert "2 labels" in markdown(at) and "6 usable examples" in markdown(at)

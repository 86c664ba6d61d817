"""Bad names, bad files and clashing uploads: each gets a one-line message naming the thing at
fault (the CLI through a real subprocess, with no traceback), nothing is written where it should
not be, and nothing stored is silently replaced."""

import io
import os
import subprocess
import sys
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from core.lora.data import LabelledData, clean, read_table
from core.settings import PROJECT_ROOT
from core.uploads import MAX_NAME_BYTES, batch_names, safe_filename, save_content_addressed, save_upload

LONG_NAME = "長い論文の題名" * 18 + ".txt"  # 130 characters, 382 bytes in UTF-8


def cli(data_dir, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "core", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess, *parts: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    for part in parts:
        assert part in done.stderr, done.stderr


def tree(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("action", ["stop", "show", "resume"])
def test_runs_refuse_a_name_that_leaves_the_runs_folder(studio_env, tmp_path, action):
    (studio_env / "runs").mkdir(parents=True)
    before = tree(tmp_path)
    one_line_error(cli(studio_env, "runs", action, "../../somewhere"),
                   "run name '../../somewhere': use 3–63 letters")
    assert tree(tmp_path) == before  # no STOP file, no folder, no log anywhere


def test_show_with_a_300_character_name(studio_env):
    name = "a" * 300
    one_line_error(cli(studio_env, "runs", "show", name), f"run name '{'a' * 80}…'")
    one_line_error(cli(studio_env, "adapters", "show", name), f"no adapter named '{'a' * 80}…'")


@pytest.mark.parametrize("file_name, content, message", [
    ("empty.csv", b"", "empty.csv: not a readable CSV file (No columns to parse from file)"),
    ("bad.jsonl", b'{"text": "a", "label": "x"}\n{"text": broken\n',
     "bad.jsonl: not a readable JSONL file"),
    # Read as cp1252 (its é intact), then refused for what it holds, by name.
    ("latin.csv", "text,label\ncafé au lait,drink\n".encode("latin-1"),
     "latin.csv: at least two different labels are needed"),
])
def test_train_with_a_bad_data_file_says_why_and_the_run_is_marked(studio_env, tmp_path,
                                                                      file_name, content, message):
    data = tmp_path / file_name
    data.write_bytes(content)
    one_line_error(cli(studio_env, "train", "--data", str(data), "--name", "bad-data"), message)
    listed = cli(studio_env, "runs", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("bad-data: failed") \
        and message in listed.stdout


def test_a_latin1_csv_keeps_its_characters(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncafé crème,drink\n".encode("cp1252"))
    assert read_table(path)["text"].tolist() == ["café crème"]


def test_labels_with_line_breaks_are_joined_and_said(tmp_path):
    data, findings = clean(LabelledData([f"t{i}" for i in range(6)],
                                        ["net\n30", "net 30", "net\t 30", "cod", "cod", "cod"]))
    assert data.labels[:3] == ["net 30"] * 3
    assert "2 label(s) held line breaks, tabs or repeated spaces" in findings[0].message


def test_upload_names_fit_the_file_system_and_stay_apart(tmp_path):
    assert len(LONG_NAME) == 130 and len(safe_filename(LONG_NAME).encode()) <= MAX_NAME_BYTES
    stem, suffix = safe_filename(LONG_NAME).rsplit(".", 1)
    assert LONG_NAME.startswith(stem) and suffix == "txt"  # cut on a character, suffix kept
    saved = save_upload(tmp_path, LONG_NAME, b"words")
    assert saved.read_bytes() == b"words"
    assert batch_names(["report.pdf", "sub/report.pdf", "report\n.pdf", "other.pdf"]) == \
        ["report.pdf", "report-2.pdf", "report-3.pdf", "other.pdf"]


def test_stored_datasets_are_never_replaced(tmp_path):
    first = save_content_addressed(tmp_path, "contracts.csv", b"text,label\na,b\n")
    again = save_content_addressed(tmp_path, "contracts.csv", b"text,label\na,b\n")
    other = save_content_addressed(tmp_path, "contracts.csv", b"text,label\nc,d\n")
    assert first == again != other
    assert first.read_bytes() == b"text,label\na,b\n"


def test_train_page_zip_after_csv_keeps_the_csv(studio_env, models_env):
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180).run()
    at = at.switch_page("app_pages/train.py").run()
    at.radio(key="train-source").set_value("CSV or JSONL file").run()
    table = "text,label\n" + "".join(f"row {i},{'AB'[i % 2]}\n" for i in range(8))
    at.file_uploader(key="train-table").set_value(
        [("contracts.csv", table.encode(), "text/csv")]).run()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("invoice", "letter"):
            for i in range(3):
                archive.writestr(f"{label}/{i}.txt", f"This {label} is number {i}.")
    at.radio(key="train-source").set_value("ZIP of folders, one per label").run()
    at.file_uploader(key="train-zip").set_value(
        [("contracts.zip", buffer.getvalue(), "application/zip")]).run()
    assert not at.exception
    stored = list((studio_env / "datasets").iterdir())
    # The CSV upload is still there, unchanged, beside the ZIP and the ZIP's own table.
    assert [p.read_bytes() for p in stored if p.name.startswith("contracts-")
            and p.suffix == ".csv" and ".zip" not in p.name] == [table.encode()]
    assert sorted(p.suffix for p in stored) == [".csv", ".csv", ".zip"]


@pytest.mark.slow
def test_documents_batch_keeps_clashing_and_long_names(studio_env):
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=300).run()
    at = at.switch_page("app_pages/documents.py").run()
    at.text_input[0].set_value("papers")
    next(b for b in at.button if b.label == "Create").click().run()
    batch = [(LONG_NAME, "The long one."), ("report.txt", "First report."),
             ("sub/report.txt", "Second report."), ("report\n.txt", "Third report.")]
    at.file_uploader[0].set_value([(n, t.encode(), "text/plain") for n, t in batch]).run()
    at.button(key="ingest").click().run()
    assert not at.exception
    results = at.dataframe[0].value
    assert list(results["status"]) == ["ok"] * 4, results
    kept = {p.name: p.read_text() for p in (studio_env / "uploads" / "papers").iterdir()}
    assert {kept["report.txt"], kept["report-2.txt"], kept["report-3.txt"]} == \
        {"First report.", "Second report.", "Third report."}
    assert "The long one." in kept.values()

"""Step 1 — Data: where the examples come from, their columns, checks and the split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.train_steps import go_to
from core import charts
from core.lora.data import DataError, clean, from_table, from_zip, guess_columns, read_table, split
from core.lora.prompts import PromptError, count_truncated
from core.rag.extract import extract
from core.samples import SAMPLE_DATASET
from core.settings import Settings
from core.text import escape_markdown
from core.uploads import UploadError, discard, save_content_addressed, uploaded_as


@st.cache_resource(show_spinner="Loading the tokenizer…")
def tokenizer_for(base: str, models_dir: str):
    from core.models import load_tokenizer

    return load_tokenizer(base, Path(models_dir))


SOURCES = ["Sample dataset", "CSV or JSONL file", "ZIP of folders, one per label"]


def render(s: Settings, config: dict) -> None:
    # Widgets of a step not drawn lose their state, and the way back to this step met the
    # sample dataset again, which then replaced the upload in the run's settings unseen: the
    # choice and the upload are kept aside and drawn again.
    keep_run_data(config)
    st.session_state.setdefault("train-source", st.session_state.get("train-source-kept",
                                                                     SOURCES[0]))
    source = st.radio("Where the examples come from", SOURCES, horizontal=True,
                      key="train-source")
    st.session_state["train-source-kept"] = source
    path: Path | None = None
    if source == SOURCES[0]:
        path = SAMPLE_DATASET
        st.caption("60 contract excerpts from CUAD (CC BY 4.0), five contract types.")
    else:
        table = source == SOURCES[1]
        upload = (st.file_uploader("Labelled examples", type=["csv", "jsonl"], key="train-table")
                  if table else
                  st.file_uploader("ZIP with a folder per label (PDF, DOCX, HTML, TXT, MD "
                                   "inside)", type=["zip"], key="train-zip"))
        if upload:
            path = (store_upload(s, upload.name, upload.getvalue()) if table
                    else zip_to_table(s, upload.name, upload.getvalue()))
            if path is not None:
                st.session_state["train-upload-kept"] = (source, str(path), upload.name)
        elif (kept := st.session_state.get("train-upload-kept")) and kept[0] == source:
            path = Path(kept[1])
            st.caption(f"Using {escape_markdown(kept[2])}, uploaded before; upload another "
                       "file to replace it.")
    if path is None:
        st.info("Choose the sample dataset or upload your examples to begin.")
        return
    shown = uploaded_name(path)
    try:
        frame = read_table(path)
    except DataError as exc:
        st.error(str(exc).replace(path.name, shown))
        discard(s.data_dir / "datasets", path)
        st.session_state.pop("train-upload-kept", None)
        return
    try:
        guessed = guess_columns(frame)
    except DataError as exc:
        st.error(f"{shown}: {exc}")
        return
    columns = [str(c) for c in frame.columns]
    chosen = config.get("data") == str(path)  # back from a later step: its columns again

    def first(setting: str, guess: str) -> int:
        return columns.index(config[setting] if chosen and config[setting] in columns else guess)

    left, right = st.columns(2)
    text_col = left.selectbox("Text column", columns, key=f"text-col-{path.name}",
                              index=first("text_col", guessed[0]))
    label_col = right.selectbox("Label column", columns, key=f"label-col-{path.name}",
                                index=first("label_col", guessed[1]))
    with st.expander(f"Preview · {shown} · {len(frame):,} rows", expanded=False):
        st.dataframe(frame.head(50), hide_index=True)
    if text_col == label_col:
        st.error(f"{shown}: the text and the label are both the column {text_col!r}; choose "
                 "the column that holds each example's category as the label.")
        return
    try:
        data, findings = clean(from_table(frame, text_col, label_col, shown))
    except DataError as exc:
        st.error(str(exc))
        return
    errors = [f.message for f in findings if f.level == "error"]
    for finding in findings:
        (st.error if finding.level == "error" else st.warning)(f"{shown}: {finding.message}")
    if not data.texts:
        return
    if not errors:
        show_truncation(s, config, data)
    counts = pd.Series(data.labels).value_counts()
    chart, split_box = st.columns([3, 2])
    chart.markdown(f"**{len(counts)} labels**, {len(data.texts):,} usable examples")
    chart.plotly_chart(charts.bars(counts.to_dict(), "examples"), key="label-chart")
    with split_box:
        st.markdown("**Split** (stratified: each label keeps its share)")
        cols = st.columns(3)
        shares = [cols[i].number_input(name, 1, 98, int(round(config["split"][i] * 100)), 1,
                                       key=f"split-{name}")
                  for i, name in enumerate(("Train %", "Validation %", "Test %"))]
        seed = st.number_input("Seed", 0, 2**31 - 1, config["seed"], key="split-seed")
        if sum(shares) != 100:
            st.error(f"The shares add up to {sum(shares)}%, not 100%.")
            return
        ratios = tuple(x / 100 for x in shares)
        if not errors:
            try:
                parts = split(data, ratios, int(seed))
            except DataError as exc:
                st.error(str(exc))
                return
            st.markdown(" · ".join(f"{k} **{v}**" for k, v in parts.sizes.items()))
    config.update(data=str(path), text_col=text_col, label_col=label_col, split=list(ratios),
                  seed=int(seed))
    st.session_state["train-labels"] = data.label_set
    if st.button("Next: model and LoRA settings", type="primary", disabled=bool(errors),
                 icon=":material/arrow_forward:"):
        go_to(1)


def keep_run_data(config: dict) -> None:
    """A new session holds the settings of the run the page opened at (pages/train.py), but not
    the upload they name: step 1 then showed the sample dataset, and a run started after it
    trained on the sample contracts instead of the user's news articles, unsaid. The run's own
    file is taken as the upload, where it is still there."""
    data = Path(config.get("data") or "")
    if ("train-source-kept" in st.session_state or not data.is_file()
            or data.resolve() == SAMPLE_DATASET.resolve()):
        return
    source = SOURCES[2] if data.name.endswith(".zip.csv") else SOURCES[1]
    st.session_state["train-source-kept"] = source
    st.session_state["train-upload-kept"] = (source, str(data), uploaded_as(data))


def uploaded_name(path: Path) -> str:
    """The name the user gave a stored upload (it is kept under its name plus a hash)."""
    kept = st.session_state.get("train-upload-kept")
    return kept[2] if kept and kept[1] == str(path) else path.name


def store_upload(s: Settings, name: str, data: bytes) -> Path | None:
    try:
        return save_content_addressed(s.data_dir / "datasets", name, data)
    except UploadError as exc:
        st.error(str(exc))
        return None


def zip_to_table(s: Settings, name: str, data: bytes) -> Path | None:
    archive = store_upload(s, name, data)
    if archive is None:
        return None
    table = archive.with_name(f"{archive.name}.csv")  # never the table of a CSV upload
    if not table.exists():
        with st.spinner(f"Extracting the documents in {archive.name}…"):
            try:
                frame, problems = from_zip(archive, lambda p: extract(p, tika_url=s.tika_server_url).text)
            except DataError as exc:
                st.error(str(exc))
                discard(archive.parent, archive)
                return None
        frame.to_csv(table, index=False)
        st.session_state["zip-problems"] = problems
    for problem in st.session_state.get("zip-problems", []):
        st.warning(problem)
    return table


def show_truncation(s: Settings, config: dict, data) -> None:
    try:
        tokenizer = tokenizer_for(config["base"], str(s.models_dir))
        cut = count_truncated(tokenizer, data.texts, data.label_set, config["max_length"])
    except PromptError as exc:
        st.error(str(exc))
        return
    except Exception as exc:  # a base model that is not available yet: say so, go on
        st.warning(f"Could not count truncated texts with {config['base']}: {exc}")
        return
    if cut:
        st.info(f"{cut} of {len(data.texts)} texts run past the {config['max_length']} tokens "
                "the model reads: their ends are left out in training (the category list is "
                "always kept). Raise the maximum length in step 2 to keep more, at the cost of "
                "slower steps.", icon=":material/content_cut:")

"""Classify: put documents into categories with a trained adapter or the base model alone."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.shared import chroma_client, settings
from core import charts
from core.formats import local_time
from core.lora.adapters import AdapterError, list_adapters, load_classifier, usable
from core.lora.classify import Prediction
from core.lora.data import DataError, read_table
from core.rag import store
from core.rag.extract import ExtractionError, extract
from core.registry import Registry
from core.text import safe_markdown
from core.uploads import SUPPORTED_SUFFIXES, UploadError, check_size, save_content_addressed, save_upload

s = settings()
BASE_ONLY = "Base model alone (no adapter)"
MODES = {"score": "Label scoring", "generate": "Generate and parse"}
NONE = "none of these"

st.title("Classify documents")
st.caption("Every label gets a real probability (how likely the model is to write it, or a "
           "classifier adapter's head), and a document none of them fits well enough can be "
           "“none of these”.")


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def classifier(adapter: str | None, base: str | None, models_dir: str):
    return load_classifier(Path(models_dir), adapter=adapter, base=base)


# Streamlit forgets a widget's value on a run that does not draw it: without this the pasted
# text would be gone after a look at another document source.
if "classify-text" in st.session_state:
    st.session_state["classify-text"] = st.session_state["classify-text"]

library = {a.name: a for a in usable(list_adapters(s.models_dir))}
left, right = st.columns([2, 3])
with left:
    choice = st.selectbox("Model", list(library) + [BASE_ONLY], key="classify-model",
                          help="Adapters are trained on the Train page.")
    adapter = library.get(choice)
    if adapter:
        test = adapter.summary()["test_accuracy"]
        st.caption(f"Base **{Path(adapter.base).name}** · {len(adapter.labels)} labels · "
                   + (f"test accuracy **{test:.0%}** · " if test is not None else "")
                   + f"trained {local_time(adapter.meta.created)}")
        base = adapter.base
    else:
        registry = Registry.load(s.registry_path, s.models_dir)
        bases = [m.name for m in registry.with_role("lora-base")]
        base = st.selectbox("Base model", bases, key="classify-base",
                            index=bases.index(s.lora_base_model) if s.lora_base_model in bases else 0)
    # a classifier adapter's head gives label probabilities only, for the labels it learnt
    head = adapter is not None and adapter.meta.adapter_type == "classifier"
    if head:
        st.caption("A classifier adapter: its head gives each of its labels a probability; it "
                   "does not write, take examples or read without the adapter.")
    # An adapter trained on the label choice alone (the presets' label loss of 1) was never
    # taught to write its answer: a Quick one wrote "1.\n\n1.\n\n2." and no label was parsed
    scores_only = adapter is not None and not head and \
        float(adapter.meta.config.get("label_loss", 0.0)) >= 1.0
    if scores_only:
        st.caption("Trained to choose among its labels only (label loss 100%), not to write "
                   "an answer: it classifies by label scoring.")
    # what a head cannot do is not offered at all (the caption above says why)
    mode = "score" if head or scores_only else st.segmented_control(
        "Method", list(MODES), format_func=MODES.get, default="score", key="classify-mode",
        help="Label scoring reads each label's probability from the model and always gives "
             "one of your labels. Generate and parse lets the model write its answer and "
             "matches it to a label, as a plain fine-tuning script would; an answer can match "
             "no label.") or "score"
    threshold = st.slider(f"Answer “{NONE}” below", 0, 100, 0, 5, format="%d%%",
                          key="classify-threshold", disabled=mode != "score",
                          help="Scoring always picks one of the labels, even for a document "
                               "that fits none of them. Below this probability for the likeliest "
                               "label the answer is “none of these”; 0% (the default) turns it "
                               "off.") / 100
    # short: "Few-shot: show labelled exampl…" at 1024 pixels
    fewshot = not head and st.toggle("Few-shot: examples in the prompt",
                                     key="classify-fewshot",
                                     help="Labelled examples shown to the model in its prompt. "
                                          "Works with labels the adapter never saw.")
with right:
    examples: list[tuple[str, str]] = []
    if fewshot:
        source = st.file_uploader("Examples from a CSV or JSONL (document, label columns)",
                                  type=["csv", "jsonl"], key="examples-file")
        seed = pd.DataFrame({"document": ["", ""], "label": ["", ""]})
        if source:
            try:
                table = read_table(save_content_addressed(s.data_dir / "datasets", source.name,
                                                          source.getvalue()))
                seed = table[["document", "label"]].astype(str)
            except (DataError, UploadError, KeyError) as exc:
                st.error(f"{source.name}: {exc}" if isinstance(exc, KeyError) else str(exc))
        edited = st.data_editor(seed, num_rows="dynamic", width="stretch",
                                key=f"examples-{source.name if source else 'typed'}")
        examples = [(str(doc).strip(), str(label).strip()) for doc, label in
                    zip(edited["document"], edited["label"])
                    if str(doc).strip() and str(label).strip()]
        labels = list(dict.fromkeys(label for _, label in examples))
        st.caption(safe_markdown(f"{len(examples)} examples · labels: "
                                 f"{', '.join(labels) or 'none yet'}"))
    elif adapter:
        labels = adapter.labels
        st.markdown(safe_markdown("**Labels** · " + " · ".join(f"`{label}`" for label in labels)))
    else:
        typed = st.text_input("Labels, separated by commas", key="classify-labels",
                              placeholder="Invoice, Contract, Letter")
        labels = list(dict.fromkeys(x.strip() for x in typed.split(",") if x.strip()))
    compare = not head and st.toggle("Compare with the base model alone", key="classify-compare",
                                     disabled=adapter is None,
                                     help="The same prompt and labels, with the adapter "
                                          "switched off; for one document at a time.")

st.divider()
source = st.radio("Documents", ["Paste text", "Upload files", "From a collection"],
                  horizontal=True, key="classify-source")


def read_uploads(files, bar) -> list[tuple[str, str | None, str | None]]:
    """(name, text, error) per uploaded file, extracted as ingestion does, each said on `bar`."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, f in enumerate(files):
            bar.progress(i / len(files), text=f"Reading {f.name} ({i + 1} of {len(files)})")
            try:
                check_size(f.name, f.size)
                path = save_upload(Path(tmp), f.name, f.getvalue())
                out.append((f.name, extract(path, tika_url=s.tika_server_url).text, None))
            except (UploadError, ExtractionError) as exc:
                out.append((f.name, None, str(exc)))
    return out


if source == "Paste text":
    pasted = st.text_area("Text", height=180, key="classify-text")
    inputs = [("pasted text", pasted.strip(), None)] if pasted.strip() else []
elif source == "Upload files":
    files = st.file_uploader("Files", type=[x.lstrip(".") for x in SUPPORTED_SUFFIXES],
                             accept_multiple_files=True, key="classify-files")
    inputs = [(f.name, None, None) for f in files or []]
else:
    collection = st.session_state.get("collection")
    inputs = []
    if not collection:
        st.info("No collection yet: create one on the Documents page.")
    else:
        handle = store.get_collection(chroma_client(s), collection)
        docs = {d["file"]: d["doc_id"] for d in store.documents(handle)}
        picked = st.multiselect(f"Documents of {collection}", list(docs), key="classify-docs")
        inputs = [(name, None, docs[name]) for name in picked]

problem = None
if len(labels) < 2:
    problem = "Give at least two labels" + (" (through the examples)." if fewshot else ".")
elif not inputs:
    problem = "Add a document to classify."
if problem:
    st.info(problem)
# Never disabled: text typed or pasted reaches the page only when its box loses focus, which is
# the click on this button itself; disabled, it swallowed that first click.
run = st.button("Classify", type="primary", icon=":material/label:",
                key="classify-run") and not problem


UNSURE_MARGIN = 0.05  # top two labels closer than this: say the model is unsure


def show_one(title: str, pred: Prediction, wide: bool) -> None:
    st.markdown(f"**{title}**")
    label_box, chart_box = st.columns([1, 2]) if wide else (st.container(), st.container())
    with label_box:
        if pred.label is None:
            st.error(f"No label: {pred.error}")
        else:
            top = pred.scores.get(pred.label)
            decided = pred.label_at(threshold)
            # among its labels only: next to "unlike the training documents" a bare "99%" read
            # as 99% sure
            among = " probability among its labels, a guess" if pred.unlike else " probability"
            st.metric("Label", decided or NONE,
                      (f"{top:.0%}{among}" if decided else f"likeliest: {pred.label}, "
                       f"{top:.0%}, under {threshold:.0%}") if top is not None else None,
                      delta_color="off", delta_arrow="off")
            ranked = sorted(pred.scores.values(), reverse=True)
            if len(ranked) > 1 and ranked[0] - ranked[1] < UNSURE_MARGIN:
                st.warning("The model is unsure: the top two labels are within "
                           f"{UNSURE_MARGIN:.0%} of each other.", icon=":material/help:")
        if pred.likeness and pred.unlike:
            st.warning(pred.likeness.sentence(), icon=":material/explore_off:")
        elif pred.likeness:
            st.caption(f"Like the documents it was trained on (similarity "
                       f"{pred.likeness.closest:.3f} to the closest, at least "
                       f"{pred.likeness.floor:.3f}).")
        if pred.output is not None:
            st.caption("The model's answer")
            st.code(pred.output or "(empty)", language=None)
        st.caption(f"{pred.seconds:.1f} s" + (" · the document was cut to fit the model's "
                                              "maximum length" if pred.truncated else ""))
    if pred.scores:
        with chart_box:
            st.plotly_chart(charts.bars(dict(sorted(pred.scores.items(), key=lambda kv: -kv[1])),
                                        "probability", percent=True, chance=1 / len(pred.scores),
                                        threshold=threshold or None),
                            key=f"scores-{title}")
    with st.expander("Prompt"):
        st.code(pred.prompt, language=None, wrap_lines=True)


if run:
    # Each part of the work says itself: eight files went 20-40 s with a bar empty and unlabelled
    bar = st.progress(0.0, text=f"Loading {choice}…")
    try:
        model = classifier(adapter.name if adapter else None, None if adapter else base,
                           str(s.models_dir))
    except (AdapterError, OSError, ValueError) as exc:
        bar.empty()
        st.error(f"Cannot load {choice}: {exc}")
        st.stop()
    if source == "Upload files":
        inputs = read_uploads(files, bar)
    elif source == "From a collection":
        inputs = [(name, store.document_text(handle, doc_id), None) for name, _, doc_id in inputs]
    options = dict(labels=labels, examples=examples)
    readable = [text for _, text, error in inputs if text and not error]
    bar.progress(0.0, text=f"Classifying {len(readable)} document(s)…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"{done} of {total} documents classified")

    try:
        # one document has no progress to show, and took 7-17 s on 2 cores without a sign
        with st.spinner("Classifying…") if len(readable) == 1 else contextlib.nullcontext():
            predictions, failure = iter(model.classify_many(
                readable, mode=mode, on_progress=progress, **options)), None
    except ValueError as exc:  # the labels or examples do not fit: the same for every document
        predictions, failure = iter(()), str(exc)
    bar.empty()  # the count of classified documents follows with the results
    rows = []
    for name, text, error in inputs:
        if error or not text or failure:
            rows.append({"document": name, "error": error or (failure if text else "no text")})
        else:
            rows.append({"document": name, "prediction": next(predictions)})
    st.session_state["classify-results"] = rows
    if compare and adapter and len(rows) == 1 and "prediction" in rows[0]:
        st.session_state["classify-base-only"] = model.classify(
            inputs[0][1], mode=mode, use_adapter=False, **options)
    else:
        st.session_state.pop("classify-base-only", None)
    # said beside the results, not silently left out
    st.session_state["classify-note"] = ("The comparison with the base model alone is made for "
                                         "one document at a time." if compare and len(rows) > 1
                                         else None)

rows = st.session_state.get("classify-results", [])
if note := st.session_state.get("classify-note"):
    st.info(note, icon=":material/info:")
for row in rows:
    if "error" in row:
        st.error(f"{row['document']}: {row['error']}")
if len(rows) == 1 and "prediction" in rows[0]:
    alone = st.session_state.get("classify-base-only")
    cols = st.columns(2 if alone else 1)
    with cols[0]:
        show_one(f"{rows[0]['document']} · {choice}", rows[0]["prediction"], wide=not alone)
    if alone:
        with cols[1]:
            show_one(f"{rows[0]['document']} · base model alone", alone, wide=False)
elif len(rows) > 1:
    done = [r for r in rows if "prediction" in r]
    decided = [r["prediction"].label_at(threshold) for r in done]
    table = pd.DataFrame([{
        "file": r["document"],
        "label": label or (NONE if r["prediction"].label else "(no label)"),
        "probability": r["prediction"].scores.get(r["prediction"].label),
        "note": "; ".join(note for note in (
            r["prediction"].error or ("" if label else f"likeliest: {r['prediction'].label}"),
            f"{r['prediction'].likeness.brief()}: a guess" if r["prediction"].unlike
            and r["prediction"].likeness else "") if note),
        "seconds": round(r["prediction"].seconds, 1)}
        for r, label in zip(done, decided)])
    st.markdown(f"**{len(done)} of {len(rows)} documents classified**")
    strangers = sum(r["prediction"].unlike for r in done)
    if strangers:
        st.warning(("All of them are" if strangers == len(done) else
                    f"{strangers} of {len(done)} documents are")
                   + " unlike the documents this adapter was trained on: read their labels as "
                   "guesses" + ("." if strangers == len(done) else " (the note column says "
                                "which)."), icon=":material/explore_off:")
    if len(table):
        # What was asked for first: long file names must not push the answer out of sight.
        # Whole percents, as everywhere else (the downloads keep the exact probability).
        st.dataframe(table.assign(probability=table["probability"] * 100), hide_index=True,
                     width="stretch", column_config={
                         "file": st.column_config.TextColumn("file", width="medium"),
                         # before the seconds: at 1024 pixels it read "unlike the tra…"
                         "note": st.column_config.TextColumn("note", width="medium"),
                         "seconds": st.column_config.NumberColumn(
                             "seconds", help="Documents of similar length are scored together: "
                                             "each gets its share of its batch's time"),
                         "probability": st.column_config.ProgressColumn(
                             "probability", min_value=0.0, max_value=100.0, format="%.0f%%",
                             help="The likeliest label's probability")})
        st.plotly_chart(charts.bars(table["label"].value_counts().to_dict(), "documents"),
                        key="distribution")
        records = [{"document": r["document"], **r["prediction"].as_dict(),
                    "answer": label, "threshold": threshold} for r, label in zip(done, decided)]
        a, b = st.columns(2)
        a.download_button("Download CSV", table.to_csv(index=False), "classified.csv", "text/csv",
                          icon=":material/download:")
        b.download_button("Download JSON", json.dumps(records, indent=2), "classified.json",
                          "application/json", icon=":material/download:")

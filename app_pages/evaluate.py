"""Evaluate: a collection against questions with known answers, each retrieval method side by
side. The run goes on in the background (core.rag.evaluate) and is saved, so a refresh finds it
and later runs of the same collection can be compared with it."""

import json

import pandas as pd
import streamlit as st

from app_pages.shared import chat_engine, load_sample, select_collection, settings
from core import charts
from core.errors import InputError
from core.formats import local_time
from core.rag.evaluate import (
    METHODS,
    EvalConfig,
    list_runs,
    load_run,
    parse_qa,
    read_qa,
    rows_csv,
    start_run,
    summary_table,
)
from core.rag.retrieval import DEFAULT_K
from core.samples import SAMPLE_QA, SAMPLE_QA_COLLECTION, load_qa_sample
from core.settings import Settings

s = settings()
st.title("Evaluate")
st.caption("Ask a collection questions whose answers you know: per retrieval method, whether the "
           "right document came back (hit), whether the answer is in a retrieved chunk "
           "(support) and, with answers on, how close the model's answers are (token F1).")

current = st.session_state.get("collection")
with st.expander("SQuAD sample: one click to a demo", expanded=current != SAMPLE_QA_COLLECTION,
                 icon=":material/school:"):
    st.markdown(f"12 passages of SQuAD 2.0's *Normans* article and 16 of their questions (4 "
                f"unanswerable), CC BY-SA 4.0; credits in `data/samples/CREDITS.md`. Loading "
                f"stores the passages in the collection **{SAMPLE_QA_COLLECTION}**.")
    if st.button("Load the SQuAD sample", icon=":material/download:", key="load-qa-sample"):
        loaded = load_sample("Loading the SQuAD passages…",
                             lambda progress: load_qa_sample(s, progress),
                             "SQuAD sample loaded", "SQuAD sample: problems")
        if loaded.ok:
            select_collection(SAMPLE_QA_COLLECTION)
            st.rerun()

if not current:
    st.info("No collection yet: load the SQuAD sample above, or create one on the Documents "
            "page.")
    st.stop()

runs = list_runs(s, current)
running = [r for r in runs if r["status"] == "running"]


# A new run ---------------------------------------------------------------------------------
def questions(source: str, upload) -> tuple[list, str] | None:
    if source == "sample":
        return read_qa(SAMPLE_QA), SAMPLE_QA.name
    if upload is None:
        st.error("Choose a QA file first.")
        return None
    try:
        text = upload.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        st.error(f"{upload.name} is not UTF-8 text.")
        return None
    return parse_qa(text, upload.name), upload.name


with st.container(border=True):
    # the sample's questions are about its own passages: over another collection every one
    # of them would miss, and the run would measure nothing
    own = current == SAMPLE_QA_COLLECTION
    source = st.radio("Questions", ["sample", "file"] if own else ["file"], horizontal=True,
                      format_func={"sample": "The SQuAD sample", "file": "A QA file"}.get)
    if not own:
        st.caption(f"The SQuAD sample's questions are about its own passages: choose "
                   f"**{SAMPLE_QA_COLLECTION}** in the sidebar (or load it above) to run them.")
    upload = None
    if source == "file":
        upload = st.file_uploader(
            "QA file: CSV with a header, or JSON Lines", type=["csv", "jsonl", "json"],
            help="Fields: question, answer (empty when the documents do not answer it), "
                 "document (optional: the file name that holds the answer).")
    cols = st.columns([3, 1, 2], vertical_alignment="bottom")
    methods = cols[0].multiselect("Retrieval methods", METHODS, default=list(METHODS))
    k = cols[1].number_input("Chunks (k)", 1, 50, DEFAULT_K)
    answers = cols[2].toggle("Also answer with the chat model",
                             help="Answer F1 and refusals; about 10 s per question and method "
                                  "on a small CPU.")
    if st.button("Run evaluation", type="primary", icon=":material/play_arrow:",
                 disabled=bool(running) or not methods):
        try:
            got = questions(source, upload)
            if got:
                items, qa_name = got
                config = EvalConfig(current, tuple(methods), int(k), answers, qa_name)
                run_id = start_run(s, config, items, chat_engine(s) if answers else None)
                st.session_state["evaluation-run"] = run_id
                st.rerun()
        except InputError as exc:
            st.error(str(exc))
    if running:
        st.info("An evaluation of this collection is running; one at a time.")

if not runs:
    st.caption(f"No evaluations of **{current}** yet.")
    st.stop()


# A run: progress, then its results -------------------------------------------------------
def label(run: dict) -> str:
    config = run["config"]
    return (f"{local_time(run['started'])} · {config['qa_name'] or 'questions'} · "
            f"{', '.join(config['methods'])} · k = {config['k']}"
            f"{' · answers' if config['answers'] else ''} · {run['collection']['chunks']} "
            f"chunks ({run['id']})")


ids = [r["id"] for r in runs]
if st.session_state.get("evaluation-run") not in ids:
    st.session_state["evaluation-run"] = ids[0]
by_id = {r["id"]: r for r in runs}
shown = st.selectbox("Run", ids, format_func=lambda i: label(by_id[i]), key="evaluation-run")


def progress(s: Settings, run_id: str) -> None:
    run = load_run(s, run_id) or {}
    if run.get("status") != "running":  # finished: the whole page draws the results
        st.rerun(scope="app")
    done, total = run.get("done", 0), run.get("total") or 1
    st.progress(done / total, text=f"{done} of {total} questions × methods")


run = load_run(s, shown)
if run is None:
    st.error("This run's file cannot be read.")
    st.stop()
if run["status"] == "running":
    st.fragment(progress, run_every=1.0)(s, shown)
    st.stop()
if run["status"] != "done":
    st.error(f"The run {run['status']}: {run['error']}")

info = run["collection"]
st.caption(f"{run['done']} of {run['total']} questions × methods · {info['chunks']} chunks, "
           f"{info['chunk_size']}/{info['chunk_overlap']} characters, "
           f"`{info['embedding_model']}` · k = {run['config']['k']}"
           + (f" · answers by `{run['chat_model']}`" if run["chat_model"] else ""))
k = run["config"]["k"]
SHARES = ["hit@1", f"hit@{k}", f"support@{k}", "answer_f1", "refusal_rate"]
others = st.multiselect("Compare with earlier runs of this collection",
                        [i for i in ids if i != shown and by_id[i]["status"] == "done"],
                        format_func=lambda i: label(by_id[i]))
table = summary_table([run] + [by_id[i] for i in others])
shares = [m for m in dict.fromkeys(key for row in table for key in row)
          if m.startswith(("hit@", "support@")) or m in SHARES]
# percents, as the chart beside it; a measure no run here took (answers, for a retrieval-only
# run) is left out rather than shown as "None"
summary = pd.DataFrame(table).drop(columns=["method", "run"]).dropna(axis=1, how="all")
st.dataframe(summary, hide_index=True, key="evaluation-summary", column_config={
    m: st.column_config.NumberColumn(m, format="%.2f" if m == "answer_f1" else "percent")
    for m in shares if m in summary})
st.plotly_chart(charts.evaluation(table, shares), config={"displayModeBar": False},
                key="evaluation-chart")

st.subheader("Per question")
rows = pd.DataFrame(run["rows"])
if not rows.empty:
    rows["retrieved"] = rows["retrieved"].map("; ".join)
st.dataframe(rows, hide_index=True, key="evaluation-rows", column_config={
    "retrieved": st.column_config.TextColumn("retrieved", width="large")})
downloads = st.columns(2)
downloads[0].download_button("Download CSV", rows_csv(run), f"evaluation-{shown}.csv",
                             "text/csv", icon=":material/download:")
downloads[1].download_button("Download JSON", json.dumps(run, indent=1),
                             f"evaluation-{shown}.json", "application/json",
                             icon=":material/download:")

"""Train: a click-through wizard for LoRA fine-tuning — data, model, train (live), evaluate, save.
The page only writes a TrainConfig and starts `python -m core train` as its own process; all it
shows is read back from the run folder, so a refresh or a page switch loses nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd
import psutil
import streamlit as st

from core import charts
from core import adapter_ops
from core.adapters import AdapterError, adapters_dir, read
from core.extract import extract
from core.registry import Registry
from core.samples import SAMPLE_DATASET
from core.training import jobs
from core.training.config import ALL_LINEAR, PRESETS, TrainConfig, from_preset
from core.training.data import (DataError, clean, from_table, from_zip, guess_columns,
                                read_table, split)
from core.training.prompts import PromptError, count_truncated
from core.uploads import UploadError, save_upload
from pages.shared import settings

s = settings()
STEPS = ["1 · Data", "2 · Model", "3 · Train", "4 · Evaluate", "5 · Save"]
PRESET_TEXT = {"quick": "Quick demo — minutes on a laptop", "balanced": "Balanced",
               "thorough": "Thorough — best results, slowest"}
DATA_FIELDS = {"name", "data", "text_col", "label_col", "base", "split", "seed"}
FORM_FIELDS = [f for f in fields(TrainConfig) if f.name not in DATA_FIELDS]

if "train-config" not in st.session_state:
    st.session_state["train-config"] = asdict(from_preset("quick", name="my-classifier",
                                                          base=s.lora_base_model))
config: dict = st.session_state["train-config"]

st.title("Train a classifier")
st.caption("Fine-tune a small language model with LoRA to put documents into your categories. "
           "Training runs in its own process: leave the page, it keeps going.")
if "pending-train-step" in st.session_state:
    st.session_state["train-step"] = st.session_state.pop("pending-train-step")
step = st.segmented_control("Step", STEPS, key="train-step", default=STEPS[0],
                            label_visibility="collapsed") or STEPS[0]


def go_to(index: int) -> None:
    st.session_state["pending-train-step"] = STEPS[index]
    st.rerun()


@st.cache_resource(show_spinner="Loading the tokenizer…")
def tokenizer_for(base: str, models_dir: str):
    from transformers import AutoTokenizer

    from core.training.trainer import base_folder

    return AutoTokenizer.from_pretrained(base_folder(base, Path(models_dir)))


@st.cache_data(show_spinner="Counting trainable parameters…")
def size_of(frozen: str, models_dir: str):
    from core.training.estimate import model_size

    return model_size(TrainConfig(**json.loads(frozen)), Path(models_dir))


def frozen(candidate: TrainConfig) -> str:
    """A run config as a cache key."""
    return json.dumps(asdict(candidate), sort_keys=True)


def datasets_dir() -> Path:
    return s.data_dir / "datasets"


# Step 1 — Data ---------------------------------------------------------------------------------
def data_step() -> None:
    source = st.radio("Where the examples come from", ["Sample dataset", "CSV or JSONL file",
                                                       "ZIP of folders, one per label"],
                      horizontal=True, key="train-source")
    path: Path | None = None
    if source == "Sample dataset":
        path = SAMPLE_DATASET
        st.caption("60 contract excerpts from CUAD (CC BY 4.0), five contract types.")
    elif source == "CSV or JSONL file":
        upload = st.file_uploader("Labelled examples", type=["csv", "jsonl"], key="train-table")
        if upload:
            path = store_upload(upload.name, upload.getvalue())
    else:
        upload = st.file_uploader("ZIP with a folder per label (PDF, DOCX, HTML, TXT, MD inside)",
                                  type=["zip"], key="train-zip")
        if upload:
            path = zip_to_table(upload.name, upload.getvalue())
    if path is None:
        st.info("Choose the sample dataset or upload your examples to begin.")
        return
    try:
        frame = read_table(path)
        guessed = guess_columns(frame)
    except DataError as exc:
        st.error(str(exc))
        return
    columns = [str(c) for c in frame.columns]
    left, right = st.columns(2)
    text_col = left.selectbox("Text column", columns, index=columns.index(guessed[0]),
                              key=f"text-col-{path.name}")
    label_col = right.selectbox("Label column", columns, index=columns.index(guessed[1]),
                                key=f"label-col-{path.name}")
    with st.expander(f"Preview · {path.name} · {len(frame):,} rows", expanded=False):
        st.dataframe(frame.head(50), hide_index=True)
    try:
        data, findings = clean(from_table(frame, text_col, label_col, path.name))
    except DataError as exc:
        st.error(str(exc))
        return
    errors = [f.message for f in findings if f.level == "error"]
    for finding in findings:
        (st.error if finding.level == "error" else st.warning)(finding.message)
    if not errors:
        show_truncation(data)
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


def store_upload(name: str, data: bytes) -> Path | None:
    try:
        return save_upload(datasets_dir(), name, data)
    except UploadError as exc:
        st.error(str(exc))
        return None


def zip_to_table(name: str, data: bytes) -> Path | None:
    archive = store_upload(name, data)
    if archive is None:
        return None
    table = archive.with_suffix(".csv")
    if not table.exists() or table.stat().st_mtime < archive.stat().st_mtime:
        with st.spinner(f"Extracting the documents in {archive.name}…"):
            try:
                frame, problems = from_zip(archive, lambda p: extract(p, tika_url=s.tika_server_url).text)
            except DataError as exc:
                st.error(str(exc))
                return None
        frame.to_csv(table, index=False)
        st.session_state["zip-problems"] = problems
    for problem in st.session_state.get("zip-problems", []):
        st.warning(problem)
    return table


def show_truncation(data) -> None:
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
        st.info(f"{cut} of {len(data.texts)} texts are longer than {config['max_length']} tokens "
                "allow and will be cut at the end (the category list is always kept). Raise the "
                "maximum length in step 2 to keep more.", icon=":material/content_cut:")


# Step 2 — Model and LoRA ---------------------------------------------------------------------
def apply_preset() -> None:
    chosen = st.session_state.get("train-preset")
    if chosen:
        config.update(PRESETS[chosen])
        for f in FORM_FIELDS:
            st.session_state.pop(f"cfg-{f.name}", None)


def model_step() -> None:
    if not config.get("data"):
        st.info("Choose the data first (step 1).")
        return
    registry = Registry.load(s.registry_path, s.models_dir)
    known = [m.name for m in registry.with_role("lora-base")]
    other = "Other: Hugging Face id or folder"
    choice = st.selectbox("Base model", known + [other],
                          index=known.index(config["base"]) if config["base"] in known else len(known),
                          help="Gemma 3 270M learns best; SmolLM2-135M is twice as fast.",
                          key="train-base")
    base = (st.text_input("Hugging Face id or local folder", value="" if config["base"] in known
                          else config["base"], key="train-base-other")
            if choice == other else choice)
    config["base"] = base.strip() or config["base"]
    st.session_state.setdefault("train-preset", "quick")  # the settings start as Quick demo
    st.segmented_control("Preset", list(PRESETS), format_func=PRESET_TEXT.get, key="train-preset",
                         on_change=apply_preset)
    with st.expander("Advanced: every setting", icon=":material/tune:"):
        cols = st.columns(3)
        for i, f in enumerate(FORM_FIELDS):
            config[f.name] = field_widget(cols[i % 3], f)
    try:
        candidate = TrainConfig(**config)
    except ValueError as exc:
        st.error(str(exc))
        return
    try:
        size = size_of(frozen(candidate), str(s.models_dir))
    except Exception as exc:
        st.error(f"Cannot read the base model {candidate.base!r}: {exc}")
        return
    a, b, c = st.columns(3)
    a.metric("Trainable parameters", f"{size.trainable:,}",
             help=f"{size.trainable / size.total:.2%} of the model's {size.total:,}")
    b.metric("Adapter on disk", f"{size.adapter_bytes / 1e6:.1f} MB")
    c.metric("Memory available", f"{psutil.virtual_memory().available / 2**30:.1f} GiB")
    show_calibration(candidate)
    if st.button("Next: train", type="primary", icon=":material/arrow_forward:"):
        go_to(2)


def field_widget(box, f):
    key, value, help_text = f"cfg-{f.name}", config[f.name], f.metadata.get("help")
    label = f.name.replace("_", " ").capitalize()
    if key not in st.session_state:
        st.session_state[key] = value
    if f.name == "target_modules":
        return box.multiselect(label, ALL_LINEAR, key=key, help=help_text)
    if isinstance(value, bool):
        return box.toggle(label, key=key, help=help_text)
    if isinstance(value, int):
        return box.number_input(label, min_value=-1, step=1, key=key, help=help_text)
    return box.number_input(label, min_value=0.0, format="%g", key=key, help=help_text)


def show_calibration(candidate: TrainConfig) -> None:
    key = frozen(candidate)
    measured = st.session_state.get("calibration", {}).get(key)
    if st.button("Measure duration and memory", icon=":material/speed:",
                 help="Runs three real training steps in a separate process (about a minute)."):
        from core.training.estimate import calibrate

        with st.spinner("Running three training steps…"):
            try:
                measured = calibrate(candidate, s.models_dir)
            except Exception as exc:
                st.error(str(exc))
                return
        st.session_state["calibration"] = {key: measured}
    if not measured:
        st.caption("Duration and peak memory are measured, not guessed: press the button.")
        return
    minutes = measured.seconds / 60
    st.markdown(f"**≈ {minutes:.1f} min** for {measured.steps} steps "
                f"({measured.seconds_per_step:.1f} s/step), peak memory "
                f"**{measured.peak_memory_bytes / 2**30:.1f} GiB**")
    available = psutil.virtual_memory().available
    if not measured.fits(available):
        st.warning(f"This run needs about {measured.peak_memory_bytes / 2**30:.1f} GiB and only "
                   f"{available / 2**30:.1f} GiB is free: lower the batch size or maximum length, "
                   "or turn on gradient checkpointing.", icon=":material/memory:")


# Step 3 — Train --------------------------------------------------------------------------------
def train_step() -> None:
    active = jobs.active_run(s)
    with st.container(border=True):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        name = left.text_input("Run name (also the adapter's name)", value=config["name"],
                               key="train-name")
        config["name"] = name.strip()
        if right.button("Start training", type="primary", icon=":material/play_arrow:",
                        disabled=bool(active) or not config.get("data"), width="stretch"):
            start_run()
        if active:
            st.info(f"Run **{active['name']}** is training; one run at a time on this machine.")
        elif not config.get("data"):
            st.info("Choose the data first (step 1).")
    runs = jobs.list_runs(s)
    if not runs:
        return
    names = [r.name for r in runs]
    current = st.session_state.get("train-run") or (active or {}).get("name") or names[-1]
    shown = st.selectbox("Run", names, index=names.index(current) if current in names else 0)
    st.session_state["train-run"] = shown
    live_run(shown)
    with st.expander("All runs"):
        st.dataframe(pd.DataFrame([{"run": r.name, "state": r.status.get("state", "created"),
                                    "step": r.status.get("step"),
                                    "of": r.status.get("max_steps"), "base": r.config.get("base")}
                                   for r in runs]), hide_index=True)


def start_run() -> None:
    try:
        candidate = TrainConfig(**config)
        if jobs.run_dir(s, candidate.name).exists():
            raise ValueError(f"a run named {candidate.name!r} exists: choose another name, or "
                             "select it below to resume it")
        jobs.start(s, candidate)
    except (ValueError, jobs.RunBusy) as exc:
        st.error(str(exc))
        return
    st.session_state["train-run"] = candidate.name
    st.toast(f"Started {candidate.name}", icon=":material/rocket_launch:")
    st.rerun()  # the start button and the notice follow the new state


@st.fragment(run_every=2)
def live_run(name: str) -> None:
    folder = jobs.run_dir(s, name)
    status, metrics = jobs.read_status(folder), jobs.read_metrics(folder)
    state = status.get("state", "starting")
    step, total = status.get("step") or 0, status.get("max_steps") or 0
    running = (jobs.active_run(s) or {}).get("name") == name
    seen = st.session_state.setdefault("train-seen-running", {})
    if seen.get(name, running) != running:  # started or ended: the whole page follows
        seen[name] = running
        st.rerun(scope="app")
    seen[name] = running
    head = st.columns([3, 1, 1], vertical_alignment="center")
    detail = f" · {status.get('evaluating', 'starting')}" if state == "evaluating" else ""
    eta = status.get("eta_s")
    if state == "running" and running and eta is not None:
        detail = f" · about {eta / 60:.1f} min left"
    head[0].progress(step / total if total else 0.0,
                     text=f"**{state}** · step {step} of {total or '?'}{detail}")
    if running and state == "running":
        if head[1].button("Stop", icon=":material/stop:", key=f"stop-{name}", width="stretch"):
            jobs.request_stop(s, name)
            st.toast("Stopping after the current step; the adapter so far is kept.")
    elif not running and state in ("stopped", "failed", "running", "stopping") \
            and jobs.last_checkpoint(folder):
        # Resume sits apart from where Stop was, so a double click cannot undo a stop.
        if head[2].button("Resume", icon=":material/play_arrow:", key=f"resume-{name}",
                          width="stretch"):
            try:
                jobs.start(s, TrainConfig.load(folder / "config.yaml"), resume=True)
            except (ValueError, jobs.RunBusy) as exc:
                st.error(str(exc))
    if state in ("finished", "stopped") and jobs.read_evaluation(folder):
        if head[1].button("See the evaluation", icon=":material/arrow_forward:",
                          key=f"eval-{name}", type="primary", width="stretch"):
            go_to(3)
    if state == "failed":
        st.error(f"The run failed: {status.get('error', 'see the log')}")
    controls = st.columns([2, 1, 3])
    smoothing = controls[0].slider("Smoothing", 0.0, 0.95, 0.6, 0.05, key=f"smooth-{name}")
    log_y = controls[1].toggle("Log scale", key=f"log-{name}")
    if metrics:
        st.plotly_chart(charts.loss_curve(metrics, smoothing, log_y), key=f"curve-{name}",
                        config={"displayModeBar": False})
        last = metrics[-1]
        if "tokens_per_s" in last:
            controls[2].caption(f"{last['tokens_per_s']:,.0f} tokens/s · epoch {last['epoch']:.2f}")
    else:
        st.caption("The loss curve appears after the first step.")
    tail = jobs.log_tail(folder, 12)
    if tail:
        with st.expander("Log"):
            st.code(tail, language=None)


# Step 4 — Evaluate -----------------------------------------------------------------------------
def evaluated_runs() -> list[str]:
    return [r.name for r in jobs.list_runs(s) if jobs.read_evaluation(r.folder)]


def pick_run(label: str) -> str | None:
    names = evaluated_runs()
    if not names:
        st.info("No evaluated run yet: train one in step 3 (it is evaluated when it ends).")
        return None
    current = st.session_state.get("train-run")
    return st.selectbox(label, names, index=names.index(current) if current in names else len(names) - 1)


def evaluate_step() -> None:
    name = pick_run("Run")
    if not name:
        return
    folder = jobs.run_dir(s, name)
    ev, status = jobs.read_evaluation(folder), jobs.read_status(folder)
    rows = {"LoRA adapter": ev["adapter"], "Base model, zero-shot": ev["zero_shot"],
            "Embeddings + logistic regression": ev["baseline"]}
    st.markdown(f"On the **test split** ({ev['test_size']} examples never seen in training; "
                f"each one is {1 / ev['test_size']:.0%} of the accuracy):")
    if status.get("state") == "stopped":
        st.info(f"This run was stopped early, at step {status.get('step')} of "
                f"{status.get('max_steps')}: the adapter has not finished learning.",
                icon=":material/stop_circle:")
    cols = st.columns(3)
    gain = ev["adapter"]["accuracy"] - ev["zero_shot"]["accuracy"]
    for col, (title, result) in zip(cols, rows.items()):
        col.metric(title, f"{result['accuracy']:.0%}",
                   f"{gain:+.0%} vs zero-shot" if title == "LoRA adapter" and round(gain, 2)
                   else None,
                   help=f"macro-F1 {result['macro_f1']:.2f} · {result['seconds']} s")
    adapter = ev["adapter"]
    st.subheader("Per class (adapter)")
    st.dataframe(pd.DataFrame(adapter["per_class"]).T, width="stretch", column_config={
        k: st.column_config.NumberColumn(k, format="%.2f") for k in ("precision", "recall", "f1")}
        | {"support": st.column_config.NumberColumn("support", format="%d")})
    left, right = st.columns(2)
    left.plotly_chart(charts.confusion(adapter["confusion"], adapter["labels"], "Adapter"),
                      key="cm-adapter", config={"displayModeBar": False})
    right.plotly_chart(charts.confusion(ev["zero_shot"]["confusion"], adapter["labels"],
                                        "Base model, zero-shot"), key="cm-zero",
                       config={"displayModeBar": False})
    wrong = adapter["misclassified"]
    st.subheader(f"Misclassified by the adapter ({len(wrong)})")
    if wrong:
        table = pd.DataFrame(wrong).assign(confidence=lambda t: t["confidence"] * 100)
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"confidence": st.column_config.ProgressColumn(
                         "confidence", min_value=0, max_value=100, format="%.0f%%")})
    else:
        st.success("None: every test example was classified correctly.")
    if st.button("Next: save", type="primary", icon=":material/arrow_forward:"):
        go_to(4)


# Step 5 — Save ---------------------------------------------------------------------------------
def save_step() -> None:
    name = pick_run("Adapter from run")
    if not name:
        return
    folder = adapters_dir(s.models_dir) / name
    if not folder.is_dir():
        st.warning(f"The run {name} has no saved adapter.")
        return
    info = read(folder)
    st.success(f"Saved in PEFT format under `{folder}`", icon=":material/inventory_2:")
    files = pd.DataFrame([{"file": p.name, "size": f"{p.stat().st_size / 1e6:.2f} MB"}
                          for p in sorted(folder.iterdir()) if p.is_file()])
    left, right = st.columns([1, 2])
    left.dataframe(files, hide_index=True)
    summary = {k: info.meta.get(k) for k in ("base", "base_sha256", "labels", "prompt_format",
                                             "dataset", "dataset_sha256", "split", "steps",
                                             "training_seconds", "created")}
    summary["test accuracy"] = info.summary()["test_accuracy"]
    summary["hyperparameters"] = info.meta.get("config")
    right.json(summary, expanded=1)
    left.download_button("Download as ZIP", adapter_ops.export_zip(s.models_dir, name),
                         f"{name}.zip", "application/zip", icon=":material/download:")
    with st.form("save-copy", border=False):
        copy = st.text_input("Save a copy as", key="copy-name")
        if st.form_submit_button("Save copy", key="save-copy-button") and copy.strip():
            try:
                target = adapter_ops.copy(s.models_dir, name, copy.strip())
            except (AdapterError, ValueError) as exc:
                st.error(str(exc))
            else:
                st.success(f"Copied to {target}")


{STEPS[0]: data_step, STEPS[1]: model_step, STEPS[2]: train_step, STEPS[3]: evaluate_step,
 STEPS[4]: save_step}[step]()

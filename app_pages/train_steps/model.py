"""Step 2 — Model and LoRA: the base model, a preset or every setting, size and a measured run."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import psutil
import streamlit as st

from app_pages.train_steps import go_to
from core.lora.config import ADAPTER_TYPES, PRESETS, TrainConfig, preset_values
from core.lora.estimate import CALIBRATION_STEPS
from core.registry import Registry
from core.settings import Settings

PRESET_TEXT = {"quick": "Quick demo — minutes on a laptop", "balanced": "Balanced",
               "thorough": "Thorough — best results, slowest"}
TYPE_TEXT = {"generative": "Writes the label", "classifier": "Classification head"}
DATA_FIELDS = {"name", "data", "text_col", "label_col", "base", "split", "seed", "adapter_type"}
FORM_FIELDS = [f for f in fields(TrainConfig) if f.name not in DATA_FIELDS]


@st.cache_data(show_spinner="Counting trainable parameters…")
def size_of(frozen: str, models_dir: str):
    from core.lora.estimate import model_size

    return model_size(TrainConfig(**json.loads(frozen)), Path(models_dir))


def frozen(candidate: TrainConfig) -> str:
    """A run config as a cache key."""
    return json.dumps(asdict(candidate), sort_keys=True)


def apply_preset(config: dict) -> None:
    """The chosen preset's settings, for the chosen adapter type (a classifier's head has its
    own learning rate); every field shows them anew."""
    chosen = st.session_state.get("train-preset")
    if chosen is None:  # the chosen one clicked again (it deselects): applied again, kept
        chosen = st.session_state["train-preset"] = st.session_state.get("train-preset-kept",
                                                                          "quick")
    st.session_state["train-preset-kept"] = chosen
    config.update(preset_values(chosen, st.session_state.get("train-adapter-type",
                                                             "generative")))
    for f in FORM_FIELDS:
        st.session_state.pop(f"cfg-{f.name}", None)


def render(s: Settings, config: dict) -> None:
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
    config["adapter_type"] = st.radio(
        "The adapter", ADAPTER_TYPES, horizontal=True, format_func=TYPE_TEXT.get,
        index=ADAPTER_TYPES.index(config.get("adapter_type", "generative")),
        key="train-adapter-type", on_change=apply_preset, args=(config,),
        help="Writes the label: the model answers with one of the labels; it can also take "
             "few-shot examples or a subset of the labels, and exports to GGUF. Classification "
             "head: a small layer on the model's reading of the document gives each label's "
             "probability; faster to train and to run, its labels fixed at training.")
    st.session_state.setdefault("train-preset", "quick")  # the settings start as Quick demo
    st.segmented_control("Preset", list(PRESETS), format_func=PRESET_TEXT.get, key="train-preset",
                         on_change=apply_preset, args=(config,))
    with st.expander("Advanced: every setting", icon=":material/tune:"):
        cols = st.columns(3)
        for i, f in enumerate(FORM_FIELDS):
            config[f.name] = field_widget(cols[i % 3], f, config[f.name])
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
    show_calibration(s, candidate)
    if st.button("Next: train", type="primary", icon=":material/arrow_forward:"):
        go_to(2)


def field_widget(box, f, value):
    key, help_text = f"cfg-{f.name}", f.metadata.get("help")
    label = f.name.replace("_", " ").capitalize()
    if key not in st.session_state:
        st.session_state[key] = value
    lo, hi, choices = f.metadata["lo"], f.metadata["hi"], f.metadata["choices"]
    if choices and isinstance(value, str):
        return box.selectbox(label, choices, key=key, help=help_text)
    if choices:
        return box.multiselect(label, choices, key=key, help=help_text)
    if isinstance(value, bool):
        return box.toggle(label, key=key, help=help_text)
    if isinstance(value, int):
        return box.number_input(label, min_value=int(lo), max_value=int(hi), step=1, key=key,
                                help=help_text)
    return box.number_input(label, min_value=float(lo), max_value=float(hi), format="%g",
                            key=key, help=help_text)


def show_calibration(s: Settings, candidate: TrainConfig) -> None:
    key = frozen(candidate)
    measured = st.session_state.get("calibration", {}).get(key)
    if st.button("Measure duration and memory", icon=":material/speed:",
                 help="Runs three real training steps in a separate process (about a minute)."):
        from core.lora.estimate import calibrate

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
    if candidate.max_minutes and minutes > candidate.max_minutes:
        fit = int(candidate.max_minutes * 60 / measured.seconds_per_step)
        st.info(f"The time limit of {candidate.max_minutes:g} min allows about {fit} of the "
                f"{measured.steps} steps ({fit / measured.steps:.0%} of the planned training): "
                "the run plans that many once its first steps show the pace. Raise **Max "
                "minutes** under Advanced to train on everything.", icon=":material/timer:")
    st.caption(f"Measured from {CALIBRATION_STEPS} real training steps just now, assuming the "
               "machine stays as idle as it was then: other programs, another run or a busy "
               "browser make each step slower. Training only: the evaluations during and after "
               "the run come on top. The Train step's ETA follows the run's own recent steps.")
    available = psutil.virtual_memory().available
    if not measured.fits(available):
        st.warning(f"This run needs about {measured.peak_memory_bytes / 2**30:.1f} GiB and only "
                   f"{available / 2**30:.1f} GiB is free: lower the batch size or maximum length, "
                   "or turn on gradient checkpointing.", icon=":material/memory:")

"""Train: a click-through wizard for LoRA fine-tuning — data, model, train (live), evaluate, save.
The page only writes a TrainConfig and starts `python -m core train` as its own process; all it
shows is read back from the run folder, so a refresh or a page switch loses nothing. Each step
lives in app_pages/train_steps/."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from app_pages.shared import settings
from app_pages.train_steps import STEPS, data, evaluate, model, run, save
from core.lora import runs
from core.lora.config import TrainConfig, from_preset

s = settings()

def first_config() -> dict:
    """A reload opens at the run the work is on (below), so the wizard holds that run's settings
    too: with the preset's, its name box read "my-classifier" beside the run it showed."""
    point = runs.resume_point(s)
    if point is not None:
        try:
            return asdict(TrainConfig.load(runs.run_dir(s, point[0]).config_path))
        except (OSError, ValueError, TypeError):  # a config an older version wrote: the preset
            pass
    return asdict(from_preset("quick", name="my-classifier", base=s.lora_base_model))


if "train-config" not in st.session_state:
    st.session_state["train-config"] = first_config()
config: dict = st.session_state["train-config"]

st.title("Train a classifier")
st.caption("Fine-tune a small language model with LoRA to put documents into your categories. "
           "Training runs in its own process: leave the page, it keeps going.")
if "train-step" not in st.session_state and (point := runs.resume_point(s)) is not None:
    # A reload or a return to the page opens where the work is: the running or newest run.
    st.session_state["train-run"], at = point
    st.session_state["train-step"] = STEPS[2] if at == "train" else STEPS[3]
if "pending-train-step" in st.session_state:
    st.session_state["train-step"] = st.session_state.pop("pending-train-step")
st.session_state.setdefault("train-step", STEPS[0])  # a widget default beside it would warn


def stay_on_step() -> None:
    """A click on the step shown deselects it: it stays shown (the page fell back to step 1)."""
    if st.session_state.get("train-step") is None:
        st.session_state["train-step"] = st.session_state.get("train-step-shown", STEPS[0])


step = st.segmented_control("Step", STEPS, key="train-step", label_visibility="collapsed",
                            on_change=stay_on_step) or STEPS[0]
st.session_state["train-step-shown"] = step

{STEPS[0]: lambda: data.render(s, config), STEPS[1]: lambda: model.render(s, config),
 STEPS[2]: lambda: run.render(s, config), STEPS[3]: lambda: evaluate.render(s),
 STEPS[4]: lambda: save.render(s)}[step]()

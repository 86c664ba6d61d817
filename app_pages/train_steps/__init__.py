"""The Train page's steps, one module each; here is what more than one step needs."""

from __future__ import annotations

import streamlit as st

from core.lora import runs
from core.settings import Settings

STEPS = ["1 · Data", "2 · Model", "3 · Train", "4 · Evaluate", "5 · Save"]


def go_to(index: int) -> None:
    # The step chooser is already drawn in this run: the page sets it at the start of the next.
    st.session_state["pending-train-step"] = STEPS[index]
    st.rerun()


def pick_run(s: Settings, label: str) -> str | None:
    names = runs.evaluated_runs(s)
    if not names:
        st.info("No evaluated run yet: train one in step 3 (it is evaluated when it ends).")
        return None
    current = st.session_state.get("train-run")
    return st.selectbox(label, names, index=names.index(current) if current in names else len(names) - 1)

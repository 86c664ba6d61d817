"""Step 3 — Train: start a run in its own process and follow it live from its folder."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages.train_steps import go_to
from core import charts
from core.lora import runs
from core.lora.config import TrainConfig
from core.samples import SAMPLE_DATASET
from core.settings import Settings
from core.text import escape_markdown
from core.uploads import uploaded_as


def render(s: Settings, config: dict) -> None:
    active = runs.active_run(s)
    with st.container(border=True):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        name = left.text_input("Run name (also the adapter's name)", value=config["name"],
                               key="train-name", disabled=bool(active))
        config["name"] = name.strip()
        if right.button("Start training", type="primary", icon=":material/play_arrow:",
                        disabled=bool(active) or not config.get("data"), width="stretch"):
            start_run(s, config)
        if active:
            doing = ("is being tested" if runs.run_dir(s, active["name"]).status().get("state")
                     == "evaluating" else "is training")
            st.info(f"Run **{active['name']}** {doing}; one run at a time on this machine.")
        elif not config.get("data"):
            st.info("Choose the data first (step 1).")
        else:  # what a run started here trains on, said before it starts
            limit = (f", stopping after {config['max_minutes']:g} minutes" if config["max_minutes"]
                     else "")
            st.caption(f"Trains on {data_name(config['data'])} ({escape_markdown(config['text_col'])} "
                       f"→ {escape_markdown(config['label_col'])}), {config['epochs']:g} epoch(s) "
                       f"at most{limit}; change them in steps 1 and 2.")
    known = runs.list_runs(s)
    if not known:
        return
    names = [r.name for r in known]
    current = st.session_state.get("train-run") or (active or {}).get("name") or names[-1]
    shown = st.selectbox("Run", names, index=names.index(current) if current in names else 0)
    st.session_state["train-run"] = shown
    live_run(s, shown)
    with st.expander("All runs"):
        st.dataframe(pd.DataFrame([{"run": r.name, "state": r.status.get("state", "created"),
                                    "step": r.status.get("step"),
                                    "of": r.status.get("max_steps"), "base": r.config.get("base")}
                                   for r in known]), hide_index=True)


def data_name(data: str) -> str:
    return ("the sample dataset (CUAD contract types)" if data == str(SAMPLE_DATASET)
            else f"**{escape_markdown(uploaded_as(data))}**")


def start_run(s: Settings, config: dict) -> None:
    try:
        candidate = TrainConfig(**config)
        runs.start(s, candidate)
    except (ValueError, runs.RunBusy) as exc:
        st.error(str(exc))
        return
    st.session_state["train-run"] = candidate.name
    st.toast(f"Started {candidate.name}", icon=":material/rocket_launch:")
    st.rerun()  # the start button and the notice follow the new state


@st.fragment(run_every=2)
def live_run(s: Settings, name: str) -> None:
    folder = runs.run_dir(s, name)
    status, metrics = folder.status(), folder.metrics()
    state = status.get("state", "starting")
    step, total = status.get("step") or 0, status.get("max_steps") or 0
    running = (runs.active_run(s) or {}).get("name") == name
    seen = st.session_state.setdefault("train-seen-running", {})
    if seen.get(name, running) != running:  # started or ended: the whole page follows
        seen[name] = running
        st.rerun(scope="app")
    seen[name] = running
    head = st.columns([3, 1.4, 1], vertical_alignment="center")  # "See the evaluation" whole at 1024 px
    # "evaluating · step 49 of 49 · starting" said little: what is tested, and how far
    detail = (f" · testing the adapter and the baselines on the test split: "
              f"{status.get('evaluating', 'starting')}" if state == "evaluating" else "")
    eta = status.get("eta_s")
    if state == "running" and running and eta is not None:
        detail = (f" · about {eta / 60:.1f} min left (ETA from the last "
                  f"{status.get('eta_steps') or step} steps)")
    planned = status.get("planned_steps") or 0
    if total and total < planned:
        detail += f" · the time limit fits {total} of {planned} planned steps"
    head[0].progress(step / total if total else 0.0,
                     text=f"**{state}** · step {step} of {total or '?'}{detail}")
    if running and state == "running":
        if head[1].button("Stop", icon=":material/stop:", key=f"stop-{name}", width="stretch"):
            folder.request_stop()
            st.toast("Stopping after the current step; the adapter so far is kept.")
    elif running and state == "starting":
        # before the first step there is nothing to keep: the run ends instead of training a
        # step, saving it and testing it
        if head[1].button("Cancel", icon=":material/close:", key=f"cancel-{name}",
                          width="stretch", disabled=folder.stop_requested()):
            folder.request_stop()
            st.toast("Cancelling: the run ends once its model has loaded.")
    elif not running and runs.resumable(folder):
        # Resume sits apart from where Stop was, so a double click cannot undo a stop.
        if head[2].button("Resume", icon=":material/play_arrow:", key=f"resume-{name}",
                          width="stretch"):
            try:
                runs.start(s, TrainConfig.load(folder / "config.yaml"), resume=True)
            except (ValueError, runs.RunBusy) as exc:
                st.error(str(exc))
    # Only once the process has exited: its exit reruns the whole page, which would swallow a
    # click made in the same moment.
    if not running and state in ("finished", "stopped") and folder.evaluation():
        if head[1].button("See the evaluation", icon=":material/arrow_forward:",
                          key=f"eval-{name}", type="primary", width="stretch"):
            go_to(3)
    if state == "failed":
        st.error(f"The run failed: {status.get('error', 'see the log')}")
    elif state == runs.CANCELLED and not folder.last_checkpoint():
        st.info("Cancelled before its first step: nothing was trained. Start it again under "
                "the same name when you are ready.", icon=":material/cancel:")
    elif status.get("stop_reason"):
        st.caption(f"Training ended — {status['stop_reason']}.")
    controls = st.columns([2, 1, 3])
    smoothing = controls[0].slider("Smoothing", 0.0, 0.95, 0.6, 0.05, key=f"smooth-{name}")
    log_y = controls[1].toggle("Log scale", key=f"log-{name}")
    if metrics:
        st.plotly_chart(charts.loss_curve(metrics, smoothing, log_y, status.get("best_step")), key=f"curve-{name}",
                        config={"displayModeBar": False})
        last = metrics[-1]
        if "tokens_per_s" in last:
            controls[2].caption(f"{last['tokens_per_s']:,.0f} tokens/s · epoch {last['epoch']:.2f}",
                                help="An epoch is one pass over the training examples: 1.5 is "
                                     "each example seen once, half of them twice.")
    else:
        st.caption("The loss curve appears after the first step.")
    tail = folder.log_tail(12)
    if tail:
        with st.expander("Log"):
            st.code(tail, language=None)

"""Step 4 — Evaluate: the adapter against the zero-shot base model and a classic baseline."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages.shared import show_learning_curve
from app_pages.train_steps import go_to, pick_run
from core import charts
from core.lora import runs
from core.lora.evaluate import baseline_titles, baseline_verdict
from core.settings import Settings


def render(s: Settings) -> None:
    name = pick_run(s, "Run")
    if not name:
        return
    folder = runs.run_dir(s, name)
    ev, status = folder.evaluation(), folder.status()
    titles = baseline_titles(ev)
    rows = {"LoRA adapter": ev["adapter"], "Base model, zero-shot": ev["zero_shot"]}
    rows |= {title: ev[key] for key, title in titles.items()}
    st.markdown(f"On the **test split** ({ev['test_size']} examples never seen in training; "
                f"each one is {1 / ev['test_size']:.0%} of the accuracy):")
    if status.get("state") == "stopped":
        st.info(f"This run was stopped early, at step {status.get('step')} of "
                f"{status.get('max_steps')}: the adapter has not finished learning.",
                icon=":material/stop_circle:")
    elif (reason := status.get("stop_reason", "")).startswith(runs.TIME_LIMIT):
        # a run cut at 49 of 60 steps was scored as if it had learnt all it was to learn
        st.info(f"Training ended at its time limit ({reason.removeprefix(runs.TIME_LIMIT)}): the "
                "adapter learnt from fewer steps than planned. A longer limit (step 2, "
                "Advanced) may score higher.", icon=":material/timer:")
    gain = ev["adapter"]["accuracy"] - ev["zero_shot"]["accuracy"]
    for i, (title, result) in enumerate(rows.items()):
        if i % 2 == 0:  # two a row: four cut "Embeddings + logistic regression" short
            cols = iter(st.columns(2))
        col = next(cols)
        col.metric(title, f"{result['accuracy']:.0%}",
                   f"{gain * 100:+.0f} points vs zero-shot" if title == "LoRA adapter" and round(gain, 2)
                   else None,
                   help=f"macro-F1 {result['macro_f1']:.2f} (F1 averaged over the labels, "
                        f"each counting alike) · {result['seconds']} s")
    if (verdict := baseline_verdict(ev)) is not None:
        st.warning(verdict, icon=":material/balance:")
    if "learning_curve" in ev:  # evaluations saved before it have none
        show_learning_curve(ev["learning_curve"], titles, ev["adapter"]["accuracy"], "learning-curve")
    adapter = ev["adapter"]
    st.subheader("Per class (adapter)")
    st.caption("Precision: of the examples given a label, the share that had it. Recall: of "
               "those that had it, the share given it. F1 weighs the two together; support is "
               "how many test examples had the label.")
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
        # the text last: first, at 1024 pixels, it pushed the confidence out of sight
        table = pd.DataFrame(wrong).assign(confidence=lambda t: t["confidence"] * 100)[
            ["truth", "predicted", "confidence", "text"]]
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"confidence": st.column_config.ProgressColumn(
                         "confidence", min_value=0, max_value=100, format="%.0f%%")})
    else:
        st.success("None: every test example was classified correctly.")
    if st.button("Next: save", type="primary", icon=":material/arrow_forward:"):
        go_to(4)


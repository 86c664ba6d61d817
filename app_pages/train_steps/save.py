"""Step 5 — Save: the adapter's files and metadata, a ZIP to download, a copy under a new name."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages.train_steps import pick_run
from core import formats
from core.lora import adapter_ops
from core.lora.adapters import AdapterError, of_run
from core.settings import Settings
from core.text import escape_markdown
from core.uploads import uploaded_as


def render(s: Settings) -> None:
    run = pick_run(s, "Adapter from run")
    if not run:
        return
    info = of_run(s.models_dir, run)
    if info is None:
        st.warning(f"The run {run} has no saved adapter.")
        return
    name, folder = info.name, info.folder
    st.success(f"Saved in PEFT format under `{folder}`"
               + (f" (renamed from {run})" if name != run else ""), icon=":material/inventory_2:")
    # What it is in words first; the hashes and every setting below, for reproducing it (the
    # step was a JSON dump, its dataset "bbc_news_150-e4ed6656a45d.csv", its time 936.3 s)
    meta, accuracy = info.meta, info.summary()["test_accuracy"]
    cols = st.columns(4)
    cols[0].metric("Test accuracy", formats.percent(accuracy))
    cols[1].metric("Labels", len(meta.labels), help=", ".join(meta.labels))
    cols[2].metric("Training", f"{(meta.training_seconds or 0) / 60:.0f} min")
    cols[3].metric("Steps", meta.steps if meta.steps is not None else "—")
    st.caption(f"Trained on {escape_markdown(uploaded_as(meta.dataset)) if meta.dataset else 'its dataset'} "
               f"from `{meta.base}` · {formats.local_time(meta.created)}")
    st.page_link("app_pages/classify.py", label="Classify documents with it", icon=":material/label:")
    summary = {k: meta.to_dict().get(k) for k in ("base", "base_sha256", "labels", "prompt_format",
                                                  "dataset", "dataset_sha256", "split", "steps",
                                                  "training_seconds", "created")}
    summary["test accuracy"] = accuracy
    summary["hyperparameters"] = meta.config
    with st.expander("Technical details: hashes and every setting, to reproduce it"):
        st.json(formats.readable(summary), expanded=1)
    # one column: beside the details, at 1024 pixels the files' sizes were cut off
    with st.expander(f"Files in {folder}"):
        st.dataframe(pd.DataFrame([{"file": p.name, "size": _size(p.stat().st_size)}
                                   for p in sorted(folder.iterdir()) if p.is_file()]),
                     hide_index=True)
    st.download_button("Download as ZIP", adapter_ops.export_zip(s.models_dir, name),
                       f"{name}.zip", "application/zip", icon=":material/download:")
    with st.form("save-copy", border=False):
        copy = st.text_input("Save a copy as", key="copy-name")
        if st.form_submit_button("Save copy", key="save-copy-button"):
            try:
                if not copy.strip():
                    raise ValueError("give the copy a name")
                target = adapter_ops.copy(s.models_dir, name, copy.strip())
            except (AdapterError, ValueError) as exc:
                st.error(str(exc))
            else:
                st.success(f"Copied to {target}")


def _size(size: int) -> str:
    """A file's size: "0.00 MB" was all a small config file showed."""
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{max(size / 1e3, 0.1):.1f} kB"

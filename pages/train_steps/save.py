"""Step 5 — Save: the adapter's files and metadata, a ZIP to download, a copy under a new name."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import formats
from core.lora import adapter_ops
from core.lora.adapters import AdapterError, of_run
from core.settings import Settings
from pages.train_steps import pick_run


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
    files = pd.DataFrame([{"file": p.name, "size": f"{p.stat().st_size / 1e6:.2f} MB"}
                          for p in sorted(folder.iterdir()) if p.is_file()])
    left, right = st.columns([1, 2])
    left.dataframe(files, hide_index=True)
    summary = {k: info.meta.to_dict().get(k) for k in ("base", "base_sha256", "labels", "prompt_format",
                                             "dataset", "dataset_sha256", "split", "steps",
                                             "training_seconds", "created")}
    summary["test accuracy"] = info.summary()["test_accuracy"]
    summary["hyperparameters"] = info.meta.config
    right.json(formats.readable(summary), expanded=1)
    left.download_button("Download as ZIP", adapter_ops.export_zip(s.models_dir, name),
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

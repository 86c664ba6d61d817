"""Adapters: the library of trained LoRA adapters — details, rename, delete, export, import,
combine, merge, export to GGUF, and two adapters compared on one test set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.shared import settings, show_learning_curve
from core import charts
from core.errors import StudioError
from core.formats import local_time
from core.lora import adapter_ops, familiarity, gguf_export, runs
from core.lora.adapters import AdapterError, list_adapters, load_classifier, usable
from core.lora.evaluate import BASELINES, baseline_titles
from core.registry import Registry
from core.text import safe_markdown

s = settings()
st.title("Adapters")
st.caption("Every LoRA adapter trained or imported here. Adapters are small (a few MB) files "
           "that change how a base model behaves; they load from safetensors only.")
if done := st.session_state.pop("adapter-done", None):  # said after the rerun that shows it
    st.toast(done, icon=":material/check_circle:")

everything = {a.name: a for a in list_adapters(s.models_dir)}
library = {a.name: a for a in usable(list(everything.values()))}  # what can be combined or compared
registry = Registry.load(s.registry_path, s.models_dir)


with st.expander("Import an adapter (ZIP)", icon=":material/upload:"):
    upload = st.file_uploader("ZIP exported from the Studio or any PEFT LoRA adapter folder",
                              type=["zip"], key="adapter-zip")
    new_name = st.text_input("Save as (optional)", key="import-name")
    if upload and st.button("Import", key="import-button"):
        try:
            info = adapter_ops.import_zip(s.models_dir, upload.getvalue(), new_name.strip() or None,
                                          base_available=registry.available)
        except (AdapterError, ValueError) as exc:
            st.error(f"{upload.name}: {exc}")
        else:
            st.success(f"Imported {info.name}")
            st.rerun()

if not everything:
    st.info("No adapters yet: train one on the Train page, or import a ZIP above.")
    st.stop()

rows = []
for info in everything.values():
    summary = info.summary()
    targets = info.meta.config.get("target_modules")
    # What a user compares first, the settings after: at 1024 pixels "created" was off screen
    rows.append({"name": info.name, "problem": summary["problem"] or "",
                 # whole percents, as everywhere else
                 "test accuracy": (None if summary["test_accuracy"] is None
                                   else summary["test_accuracy"] * 100),
                 "labels": len(info.labels), "created": local_time(summary["created"]),
                 "base": Path(info.base).name, "r / alpha": f"{summary['r']} / {summary['alpha']}",
                 "size MB": round(summary["size_bytes"] / 1e6, 2),
                 "target modules": (", ".join(map(str, targets)) if isinstance(targets, list)
                                    else str(targets or ""))})
table = pd.DataFrame(rows)
if not table["problem"].any():  # an empty column only pushes the others off screen
    table = table.drop(columns="problem")
# the name first and whole; the long list of target modules gives way
st.dataframe(table, hide_index=True, width="stretch", key="adapter-table",
             column_config={"name": st.column_config.TextColumn("name", width="medium"),
                            "target modules": st.column_config.TextColumn(
                                "target modules", width="small"),
                            "test accuracy": st.column_config.ProgressColumn(
                                "test accuracy", min_value=0.0, max_value=100.0,
                                format="%.0f%%")})

details, operations = st.tabs(["Details", "Combine, merge, compare"])
with details:
    name = st.selectbox("Adapter", list(everything), key="adapter-details")
    info = everything[name]
    meta = info.meta
    left, right = st.columns([2, 3])
    with left:
        if info.problem:
            st.error(f"This adapter cannot be used: {info.problem}", icon=":material/error:")
        st.markdown(safe_markdown(f"**Base** `{info.base}`  \n**Labels** "
                                  + ", ".join(info.labels)))
        profile = None if info.problem else familiarity.load(info.folder, vectors=False)
        kinds = profile.kinds_in_words() if profile else ""
        if profile:
            nearer = f", or more like {kinds} than they were" if kinds else ""
            st.caption(f"Tells documents unlike its {profile.documents:,} training documents "
                       f"(similarity under {profile.floor:.3f}{nearer}).")
        else:
            st.caption("Keeps no profile of its training documents (trained before this "
                       f"version or on fewer than {familiarity.MIN_DOCUMENTS}, federated or "
                       "imported), so Classify cannot say when a document is unlike them.")
        # Profiled before profiles kept other kinds of documents (or not at all): the floor
        # alone let a news adapter pass 95% of contracts (bench/README.md).
        if not kinds and adapter_ops.trained_on_one_dataset(info) and not info.problem \
                and st.button(
                "Compare with other kinds of documents" if profile else
                "Profile its training documents", key=f"profile-{name}",
                icon=":material/compare:",
                help="Embeds its training documents again from the dataset it was trained on, "
                     "as training now does, beside the contracts, research papers and "
                     "Wikipedia articles the Studio ships, so Classify can say when a document "
                     "is unlike them or more like those."):
            try:
                with st.spinner("Embedding its training documents…"):
                    made = adapter_ops.profile(s.models_dir, name)
            except (StudioError, OSError) as exc:
                st.error(str(exc), icon=":material/error:")
            else:
                # The kinds compared with are in the caption: a toast cuts a longer line.
                st.session_state["adapter-done"] = (f"Profiled {made.documents} training "
                                                    f"documents of {name}")
                st.rerun()
        c = meta.combined or {}
        if isinstance(c.get("parents"), list):
            st.markdown(safe_markdown(f"**Combined** ({c.get('type')}) from " + ", ".join(
                f"{p} × {w}" for p, w in zip(c["parents"], c.get("weights", [])))))
        # under a label: collapsed, the JSON alone read "{...}"
        with st.expander("Training settings and details"):
            st.json({"config": meta.config, "split": meta.split, "base_sha256": meta.base_sha256,
                     "steps": meta.steps, "training_seconds": meta.training_seconds},
                    expanded=False)
        st.download_button("Export as ZIP", adapter_ops.export_zip(s.models_dir, name),
                           f"{name}.zip", "application/zip", icon=":material/download:",
                           help=f"The adapter, its metadata and, where it keeps them, its "
                                f"training documents' embeddings ({familiarity.FILE}): text "
                                "can be partly recovered from embeddings, so leave that file "
                                "out of the ZIP to share the adapter without them.")
        # Keyed by the adapter: after a delete the popover stays open on the next adapter, and
        # a shared key had left its confirmation ticked (and the old name in the box).
        with st.popover("Rename or delete", icon=":material/edit:"):
            renamed = st.text_input("New name", value=name, key=f"rename-adapter-{name}")
            # never disabled by the box's text: typed text arrives with the click itself
            rename = st.button("Rename", key="rename-button")
            if rename and renamed.strip() == name:
                st.info("Type the new name first.")
            elif rename:
                try:
                    adapter_ops.rename(s.models_dir, name, renamed.strip())
                except (AdapterError, ValueError) as exc:
                    st.error(str(exc))
                else:
                    st.session_state["adapter-done"] = f"Renamed {name} to {renamed.strip()}"
                    st.rerun()
            sure = st.checkbox(f"Yes, delete {name}", key=f"delete-sure-{name}")
            if st.button("Delete", type="primary", disabled=not sure, key="delete-button"):
                adapter_ops.delete(s.models_dir, name)
                st.session_state["adapter-done"] = f"Deleted {name}"
                st.rerun()
    with right:
        metrics = [] if info.problem else runs.run_dir(s, meta.run).metrics()
        if metrics:
            st.markdown("**Training curve**")  # a plotly title would sit on the legend
            st.plotly_chart(charts.loss_curve(metrics, 0.6), key="adapter-curve")
        federated = meta.federated
        if federated and {"config", "shards", "rounds"} <= set(federated):
            config = federated["config"]
            st.markdown(f"**Federated**: {config['clients']} clients ({config['split']} split, "
                        f"{', '.join(map(str, federated['shards']))} examples), "
                        f"{config['rounds']} rounds of {config['local_steps']} steps")
            st.plotly_chart(charts.rounds(federated["rounds"], federated.get("centralised")),
                            key="adapter-rounds")
        evaluation = meta.evaluation or {}
        if meta.test_accuracy is not None:
            result = evaluation["adapter"]
            others = [f"{title} {evaluation[key]['accuracy']:.0%}" for key, title in
                      (("zero_shot", "zero-shot"), *BASELINES.items())
                      if isinstance(evaluation.get(key), dict) and "accuracy" in evaluation[key]]
            st.markdown(f"Test accuracy **{meta.test_accuracy:.0%}**"
                        + (f" ({', '.join(others)})" if others else "")
                        + (f" on {evaluation['test_size']} examples"
                           if "test_size" in evaluation else ""))
            if "confusion" in result and "labels" in result:
                st.plotly_chart(charts.confusion(result["confusion"], result["labels"]),
                                key="adapter-confusion")
            if evaluation.get("learning_curve"):  # evaluations saved before it have none
                show_learning_curve(evaluation["learning_curve"], baseline_titles(evaluation),
                                    meta.test_accuracy, "adapter-learning-curve",
                                    heading=lambda text: st.markdown(f"**{text}**"))
        else:
            st.caption("No test results recorded for this adapter.")

with operations:
    st.subheader("Combine adapters")
    picked = st.multiselect("Adapters of one base model with the same LoRA shape", list(library),
                            key="combine-names")
    cols = st.columns(max(1, len(picked)))
    weights = [cols[i].number_input(f"Weight of {n}", 0.0, 10.0, 1.0, 0.1, key=f"w-{n}")
               for i, n in enumerate(picked)]
    kind = st.segmented_control("How", ["average", "cat", "svd", "ties", "dare_linear"],
                                default="average", key="combine-kind",
                                help="average: weighted mean of the LoRA tensors (FedAvg's rule); "
                                     "the others are PEFT's combinations.") or "average"
    combined_name = st.text_input("New adapter's name", key="combine-name")
    # not disabled by the name's box: typed text arrives with the click itself
    combine = st.button("Combine", disabled=len(picked) < 2, key="combine-button")
    if combine and not combined_name.strip():
        st.error("Name the new adapter first.")
    elif combine:
        try:
            with st.spinner("Combining…"):
                if kind == "average":
                    adapter_ops.average(s.models_dir, picked, weights, combined_name.strip())
                else:
                    adapter_ops.combine(s.models_dir, picked, weights, combined_name.strip(), kind)
        except (AdapterError, ValueError) as exc:
            st.error(str(exc))
        else:
            st.success(f"Saved {combined_name.strip()}")

    st.subheader("Merge into the base model")
    to_merge = st.selectbox("Adapter", list(library), key="merge-name")
    if st.button("Merge and save a standalone model", key="merge-button"):
        try:
            with st.spinner("Merging and checking against the adapter…"):
                report = adapter_ops.merge(s.models_dir, to_merge)
        except (AdapterError, OSError) as exc:
            st.error(str(exc))
        else:
            st.success(f"Saved to `{report['folder']}`; the merged model's outputs match the "
                       f"adapter's (largest logit difference {report['max_logit_difference']:.1e}).")

    st.subheader("Export to GGUF (llama.cpp, Ollama)")
    to_gguf = st.selectbox("Adapter", list(library), key="gguf-name")
    merged = st.checkbox("Also the merged model as one GGUF", key="gguf-merged")
    outtype = st.radio("Weights", gguf_export.OUTTYPES, horizontal=True, key="gguf-outtype")
    if st.button("Export to GGUF", key="gguf-button"):
        try:
            with st.status("Exporting to GGUF…") as status:
                report = gguf_export.export(s.models_dir, to_gguf, merged, outtype,
                                            on_progress=status.write)
        except (StudioError, OSError) as exc:
            st.error(str(exc))
        else:
            for kind, check in report["checks"].items():
                verdict = st.success if check["agrees"] else st.error
                verdict(f"{kind}: llama-cpp-python gives the adapter's top label on "
                        f"{check['same_top_label']} of {check['documents']} documents (largest "
                        f"probability difference {check['max_probability_difference']:.1e}).")
            st.write(f"Saved in `{report['folder']}`. The LoRA goes with the base GGUF "
                     f"`{report['base_gguf']}`; the Modelfile is for `ollama create`.")
            st.code(Path(report["modelfile"]).read_text(), language="dockerfile")
            lora = Path(report["lora_gguf"])
            st.download_button("Download the LoRA GGUF", lora.read_bytes(), lora.name,
                               "application/octet-stream", icon=":material/download:")

    st.subheader("Compare two adapters on one test set")
    pair = st.multiselect("Two adapters", list(library), max_selections=2, key="compare-names")
    if len(pair) == 2 and st.button("Compare on the first one's test split", key="compare-button"):
        from core.lora.config import TrainConfig
        from core.lora.evaluate import classify_split
        from core.lora.trainer import prepare_data

        try:
            parts, _ = prepare_data(TrainConfig(**library[pair[0]].meta.config))
            results = {}
            bar = st.progress(0.0)
            for i, adapter_name in enumerate(pair):
                classifier = load_classifier(s.models_dir, adapter=adapter_name)
                classifier.labels = library[pair[0]].labels
                results[adapter_name] = classify_split(
                    classifier, parts.test,
                    on_progress=lambda _, done, total, i=i, adapter_name=adapter_name: bar.progress(
                        (i + done / total) / 2, text=f"{adapter_name}: {done} of {total}"))
        except (AdapterError, KeyError, OSError, ValueError) as exc:
            st.error(f"Cannot compare: {exc}")
        else:
            for col, (adapter_name, result) in zip(st.columns(2), results.items()):
                col.metric(adapter_name, f"{result['accuracy']:.0%}",
                           help=f"macro-F1 {result['macro_f1']:.2f}")
                col.plotly_chart(charts.confusion(result["confusion"], result["labels"]),
                                 key=f"compare-{adapter_name}")

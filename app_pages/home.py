"""Home: what the Studio does, the two pipelines, whether everything is ready, sample data."""

import streamlit as st

from app_pages.shared import load_sample, report, select_collection, settings
from core.health import Check
from core.samples import SAMPLE_COLLECTION, load_samples, samples_loaded

RAG_PIPELINE = """
digraph { rankdir=LR; bgcolor="transparent";
  node [shape=box style="rounded,filled" fillcolor="#eef0ff" color="#4f46e5" fontname="sans-serif" fontsize=12];
  edge [color="#6b7280"];
  docs [label="Your documents\\nPDF · DOCX · HTML · TXT"]; tika [label="Apache Tika\\ntext per page"];
  chunks [label="Chunks\\n500 chars"]; emb [label="Embeddings\\nMiniLM"]; chroma [label="Chroma\\ncollection"];
  chat [label="Chat\\nanswer + sources" fillcolor="#dcfce7" color="#16a34a"];
  docs -> tika -> chunks -> emb -> chroma -> chat;
}"""

LORA_PIPELINE = """
digraph { rankdir=LR; bgcolor="transparent";
  node [shape=box style="rounded,filled" fillcolor="#fff4e5" color="#d97706" fontname="sans-serif" fontsize=12];
  edge [color="#6b7280"];
  data [label="Labelled examples\\nCSV · JSONL · folders"]; lora [label="LoRA fine-tune\\nsmall language model"];
  adapter [label="Adapter\\n~MBs, not GBs"];
  classify [label="Classify\\npage · REST API" fillcolor="#dcfce7" color="#16a34a"];
  data -> lora -> adapter -> classify;
}"""


def status_row(check: Check) -> None:
    icon = ":material/check_circle:" if check.ok else ":material/error:"
    color = "green" if check.ok else "red"
    line = f":{color}[{icon}] **{check.name}** — {check.summary}"
    st.markdown(line, help=check.detail or None)


s = settings()
st.title("RAG & LoRA Studio")
st.markdown(
    "Chat with your papers and teach a small language model to sort your documents — "
    "on this machine, offline. **Upload documents** and ask questions: every answer shows the "
    "passages it was built from and how well each matched. **Fine-tune** a small model with LoRA "
    "on labelled examples, watch it learn, then **classify** new documents with it.")

# At their own size: stretched to the page, the shorter flow drew its text half as large again
st.subheader("Chat with your documents")
st.graphviz_chart(RAG_PIPELINE, width="content")
st.subheader("Teach a model to sort documents")
st.graphviz_chart(LORA_PIPELINE, width="content")

status_col, samples_col = st.columns([1, 1], gap="large")
with status_col:
    with st.container(border=True, key="status-panel"):
        st.subheader("Status")
        rep = report(s)
        for caption, group in (("Models", "models"), ("Services", "services"),
                               ("This machine", "machine")):
            st.caption(caption)
            for check in rep[group]:
                status_row(check)
        if not all(c.ok for c in rep["models"]):
            st.info("Prepare the models with `python -m core models prepare` "
                    "(`make run` does it for you).")

with samples_col:
    with st.container(border=True, key="samples-panel"):
        st.subheader("Try it with sample data")
        st.markdown("A CC BY paper (*Ten Quick Tips for Deep Learning in Biology*) and 60 "
                    "labelled contracts of 5 types from CUAD. Credits in `data/samples/CREDITS.md`.")
        loaded = samples_loaded(s)
        if loaded:
            st.success(f"Sample data is loaded: collection **{SAMPLE_COLLECTION}** and the "
                       "contracts dataset.", icon=":material/check:")
            for line in st.session_state.pop("samples-loaded", []):  # what the load just did
                st.text(line)
        if st.button("Load sample data again" if loaded else "Load sample data",
                     icon=":material/download:", type="secondary" if loaded else "primary",
                     key="load-samples"):
            result = load_sample("Loading sample data…",
                                 lambda progress: load_samples(s, progress=progress),
                                 "Sample data loaded", "Sample data: problems")
            if result.ok:
                select_collection(SAMPLE_COLLECTION)
                # drawn again, so that the sidebar lists the new collection ("No collections
                # yet" stayed until the next page)
                st.session_state["samples-loaded"] = result.messages
                st.rerun()

st.divider()
st.subheader("Where to next")
# One column per side of the Studio, each link on its own line: five in a row were cut short
# ("Documents: upload and") at 1440 pixels
LINKS = (
    ("Chat with documents", (("app_pages/documents.py", "Documents: upload and browse", "description"),
                             ("app_pages/chat.py", "Chat: ask your documents", "forum"),
                             ("app_pages/evaluate.py", "Evaluate: measure retrieval and answers",
                              "fact_check"))),
    ("Sort documents", (("app_pages/train.py", "Train: teach a model your labels", "model_training"),
                        ("app_pages/classify.py", "Classify: sort documents", "label"),
                        ("app_pages/adapters.py", "Adapters: compare, combine, export",
                         "extension"))),
    ("Set up", (("app_pages/settings.py", "Settings: chat engine and models", "settings"),)),
)
for column, (heading, pages) in zip(st.columns(len(LINKS)), LINKS):
    with column:
        st.caption(heading)
        for path, label, icon in pages:
            st.page_link(path, label=label, icon=f":material/{icon}:")

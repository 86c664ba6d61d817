"""Documents: collections, uploads with live progress, the documents and chunks inside."""

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from core import store
from core.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from core.extract import ocr_available
from core.ingest import BatchProgress, ingest_files
from core.uploads import SUPPORTED_SUFFIXES, UploadError, safe_filename, save_upload
from pages.shared import chroma_client, settings

s = settings()
chroma = chroma_client(s)
st.title("Documents")
st.caption("Upload documents into a collection: Apache Tika extracts the text page by page, it is "
           "split into chunks, embedded and stored in Chroma, ready to chat with.")


def uploads_dir(collection: str) -> Path:
    return s.data_dir / "uploads" / collection


# Collections -------------------------------------------------------------------------------
collections = store.list_collections(chroma)
names = [c.name for c in collections]
top = st.columns([3, 1, 1], vertical_alignment="bottom")
if "pending-collection" in st.session_state:  # select a just-created or renamed collection
    st.session_state["collection"] = st.session_state.pop("pending-collection")
if st.session_state.get("collection") not in names:
    st.session_state.pop("collection", None)  # deleted or renamed elsewhere
with top[0]:
    current = st.selectbox("Collection", names, key="collection") if names else None
with top[1]:
    with st.popover("New collection", icon=":material/add:", width="stretch"):
        with st.form("new-collection", border=False):
            new_name = st.text_input("Name", placeholder="my-papers")
            size = st.number_input("Chunk size (characters)", 100, 4000, DEFAULT_CHUNK_SIZE, 50)
            overlap = st.number_input("Chunk overlap", 0, 1000, DEFAULT_CHUNK_OVERLAP, 10)
            if st.form_submit_button("Create", type="primary"):
                try:
                    store.open_collection(chroma, new_name.strip(), s.embedding_model,
                                          int(size), int(overlap))
                except (store.StoreError, ValueError) as exc:
                    st.error(str(exc))
                else:
                    st.session_state["pending-collection"] = new_name.strip()
                    st.rerun()
with top[2]:
    if current:
        with st.popover("Manage", icon=":material/tune:", width="stretch"):
            renamed = st.text_input("Rename to", value=current, key="rename-to")
            if st.button("Rename", disabled=renamed == current):
                try:
                    store.rename_collection(chroma, current, renamed.strip())
                except store.StoreError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["pending-collection"] = renamed.strip()
                    st.rerun()
            confirm = st.checkbox(f"Yes, delete '{current}' and all its chunks")
            if st.button("Delete collection", type="primary", disabled=not confirm):
                store.delete_collection(chroma, current)
                st.session_state.pop("collection", None)
                st.rerun()

if not current:
    st.info("No collections yet. Create one with **New collection**, or load the sample paper "
            "from the Home page.")
    st.stop()

collection = store.get_collection(chroma, current)
info = store.describe(collection)
st.caption(f"**{info.chunks}** chunks · embedded with `{info.embedding_model}` · chunks of "
           f"{info.chunk_size} characters, {info.chunk_overlap} overlap")

# Upload ------------------------------------------------------------------------------------
with st.container(border=True):
    files = st.file_uploader("Add documents", accept_multiple_files=True,
                             type=[sfx.lstrip(".") for sfx in SUPPORTED_SUFFIXES],
                             help="PDF, DOCX, HTML, TXT or Markdown. The same file uploaded again "
                                  "replaces its earlier version.")
    ocr = st.toggle("Read scanned pages with OCR", value=False, disabled=not ocr_available(),
                    help="Pages without a text layer are read by tesseract: a few seconds per "
                         "page." if ocr_available() else
                         "Needs tesseract: apt-get install tesseract-ocr")
    if st.button("Add to collection", type="primary", disabled=not files, key="ingest"):
        saved, rows = [], []
        for f in files:
            try:
                saved.append(save_upload(uploads_dir(current), f.name, f.getvalue()))
            except UploadError as exc:
                rows.append({"file": safe_filename(f.name), "status": "error", "error": str(exc)})
        bar = st.progress(0.0, text="Starting…")
        stage_line = st.empty()
        tracker = BatchProgress(saved)

        def show(path: Path, stage: str) -> None:
            done, eta = tracker.update(path, stage)
            left = f" · about {eta:.0f} s left" if eta is not None else ""
            bar.progress(done, text=f"{done:.0%}{left}")
            stage_line.markdown(f"`{path.name}` — **{stage}**")

        with st.spinner("Loading the embedding model…"):
            results = ingest_files(s, saved, current, info.chunk_size, info.chunk_overlap,
                                   on_stage=show, ocr=ocr)
        bar.progress(1.0, text="Done")
        stage_line.empty()
        st.session_state["ingest-results"] = rows + [r.to_json() for r in results]
        st.rerun()  # redraw counts, document list and chunks with the new documents

    results = st.session_state.get("ingest-results")
    if results:
        table = pd.DataFrame(results).reindex(
            columns=["file", "status", "pages", "chars", "chunks", "seconds", "extractor", "note",
                     "error"])
        ok = (table["status"] == "ok").sum()
        st.markdown(f"**{ok} of {len(table)}** file(s) stored.")
        st.dataframe(table, hide_index=True, width="stretch")
        for error in table.loc[table["status"] != "ok", "error"]:
            st.error(error, icon=":material/error:")

# Documents ---------------------------------------------------------------------------------
docs = store.documents(collection)
st.subheader(f"Documents ({len(docs)})")
if not docs:
    st.info("This collection is empty: add documents above.")
    st.stop()
doc_table = pd.DataFrame(docs)[["file", "pages", "chunks", "doc_id"]]
picked = st.dataframe(doc_table, hide_index=True, width="stretch", key="doc-table",
                      on_select="rerun", selection_mode="single-row")
rows = picked.selection.rows if picked else []
doc = docs[rows[0]] if rows else None
actions = st.columns([1, 1, 4])
if actions[0].button("Delete document", disabled=doc is None, icon=":material/delete:"):
    removed = store.delete_document(collection, doc["doc_id"])
    st.toast(f"Deleted {doc['file']} ({removed} chunks)")
    st.rerun()
if actions[1].button("Re-index", disabled=doc is None, icon=":material/refresh:"):
    source = uploads_dir(current) / doc["file"]
    if not source.is_file():
        st.error(f"{doc['file']}: the uploaded file is no longer in {source.parent}; upload it "
                 "again to re-index.")
    else:
        with st.spinner(f"Re-indexing {doc['file']}…"):
            [result] = ingest_files(s, [source], current, info.chunk_size, info.chunk_overlap)
        if result.status == "ok":
            st.toast(f"Re-indexed {doc['file']}: {result.chunks} chunks")
        else:
            st.error(result.error)

# Chunk browser -----------------------------------------------------------------------------
st.subheader("Chunks")
files = {d["file"]: d["doc_id"] for d in docs}
filters = st.columns([2, 3])
chosen = filters[0].selectbox("Document", list(files), key="chunk-doc",
                              index=list(files).index(doc["file"]) if doc else 0)
needle = filters[1].text_input("Containing", placeholder="text to look for", key="chunk-filter")
chunks = store.chunks_of(collection, files[chosen], needle or None)
per_page = pd.DataFrame(store.chunks_of(collection, files[chosen]))
if not per_page.empty:
    per_page["characters"] = per_page["text"].str.len()
    counts = per_page.groupby("page", as_index=False).agg(chunks=("id", "count"),
                                                          characters=("characters", "sum"))
    fig = px.bar(counts, x="page", y="characters", hover_data=["chunks"], height=220,
                 title=f"Characters per page — {chosen}")
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(fig, width="stretch")
if not chunks:
    st.info("No chunk of this document contains that text.")
    st.stop()
labels = [f"#{c['chunk']} · page {c['page']}" for c in chunks]
pick = st.selectbox(f"{len(chunks)} chunk(s)", range(len(chunks)), format_func=labels.__getitem__,
                    key="chunk-pick")
chunk = chunks[pick]
st.caption(f"Chunk {chunk['chunk']} · page {chunk['page']} · characters {chunk['start']}–"
           f"{chunk['end']} of the page")
st.text(chunk["text"])  # plain text: document text is never rendered as HTML
neighbours = {c["chunk"]: c for c in store.chunks_of(collection, files[chosen])}
with st.expander("Neighbouring chunks"):
    for offset in (-1, 1):
        near = neighbours.get(chunk["chunk"] + offset)
        if near:
            st.caption(f"{'Previous' if offset < 0 else 'Next'}: chunk {near['chunk']}, "
                       f"page {near['page']}")
            st.text(near["text"])

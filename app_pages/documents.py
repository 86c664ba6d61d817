"""Documents: collections, uploads with live progress, the documents and chunks inside."""

from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.shared import chroma_client, select_collection, settings
from core import charts
from core.lora import collection_labels
from core.lora.adapters import list_adapters, usable
from core.rag import store
from core.rag.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from core.rag.extract import ocr_available
from core.rag.hits import paged
from core.rag.ingest import (
    BatchProgress,
    drop_failed_originals,
    ingest_files,
    ocr_page_label,
    reindex,
    remove_document,
    stage_label,
    unstored_originals,
)
from core.rag.ingest_ray import ingest_files_ray
from core.text import heading
from core.uploads import (
    SUPPORTED_SUFFIXES,
    UploadError,
    batch_names,
    forget_uploads,
    move_uploads,
    save_upload,
    upload_folder,
)

s = settings()
chroma = chroma_client(s)
st.title("Documents")
st.caption("Upload documents into a collection: Apache Tika extracts the text page by page, it is "
           "split into chunks, embedded and stored in Chroma, ready to chat with.")


# Collections -------------------------------------------------------------------------------
current = st.session_state.get("collection")
# One row that wraps where the page is narrow: in columns, at 1024 pixels with the sidebar
# open, the buttons were cut to "Ne…" and "Man…".
top = st.container(horizontal=True, vertical_alignment="center", key="collection-bar")
with top:
    if current:
        st.markdown(f"### :material/folder: {current}", width="stretch",
                    help="Choose another collection in the sidebar.")
    # Closed once a collection is made: left open, it covered the upload box below
    if st.session_state.pop("new-collection-made", False):
        st.session_state["new-collection-popover"] = False
    with st.popover("New collection", icon=":material/add:", width="content",
                    key="new-collection-popover", on_change="rerun"):
        with st.form("new-collection", border=False, clear_on_submit=True):
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
                    select_collection(new_name.strip())
                    st.session_state["new-collection-made"] = True
                    st.rerun()
    if current:
        with st.popover("Manage", icon=":material/tune:", width="content"):
            renamed = st.text_input("Rename to", value=current, key="rename-to")
            # never disabled by the box's text: typed text arrives with the click itself
            if st.button("Rename") and renamed.strip() != current:
                try:
                    store.rename_collection(chroma, current, renamed.strip())
                    move_uploads(s.data_dir, current, renamed.strip())
                except store.StoreError as exc:
                    st.error(str(exc))
                else:
                    select_collection(renamed.strip())
                    st.rerun()
            confirm = st.checkbox(f"Yes, delete '{current}' and all its chunks")
            if st.button("Delete collection", type="primary", disabled=not confirm):
                store.delete_collection(chroma, current)
                forget_uploads(s.data_dir, current)
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
unstored = unstored_originals(s, collection)
if unstored:
    with st.container(border=True):
        st.warning(f"{len(unstored)} uploaded file(s) are kept but not in the collection: the "
                   "batch that brought them stopped before storing them ("
                   + ", ".join(f"`{p.name}`" for p in unstored) + ").", icon=":material/sync:")
        if st.button("Store them", key="store-unstored"):
            with st.spinner("Storing…"):
                done = ingest_files(s, unstored, current, info.chunk_size, info.chunk_overlap)
            drop_failed_originals(s, current, unstored, done)
            st.session_state["ingest-results"] = [r.to_json() for r in done]
            st.rerun()
if info.outdated and info.chunks:
    with st.container(border=True):
        # Said of every older version: the first ones cut short chunks at a PDF's line breaks,
        # later ones missed headings such as "Tip 1: …" or put a table's caption over the next
        # table's rows
        st.warning("This collection was chunked by an older version of the Studio, which split "
                   "and labelled its passages less well than new uploads are. Re-index it to "
                   "give answers fuller passages under their right sections; every document is "
                   "rebuilt from its uploaded original and none is lost.",
                   icon=":material/update:")
        if st.button("Re-index", type="primary", key="reindex-collection"):
            bar = st.progress(0.0, text="Loading the embedding model…")
            stored = {d["file"] for d in store.documents(collection)}
            # A re-index also stores the unstored originals, so its progress counts them.
            tracker = BatchProgress([upload_folder(s.data_dir, current) / f for f in stored]
                                    + unstored)
            done = reindex(
                s, current, lambda path, stage: bar.progress(
                    tracker.update(path, stage)[0], text=f"{path.name}: {stage_label(stage)}"),
                lambda path, read, pages: bar.progress(
                    tracker.update(path, "extract", read / pages)[0],
                    text=f"{path.name}: {ocr_page_label(read, pages)}"))
            st.session_state["ingest-results"] = [r.to_json() for r in done]
            st.rerun()

# Upload ------------------------------------------------------------------------------------
with st.container(border=True):
    # A new key after each ingestion empties the uploader: files left in it would come back
    # with the next batch, a deleted document among them.
    files = st.file_uploader("Add documents", accept_multiple_files=True,
                             key=f"uploads-{st.session_state.get('ingested', 0)}",
                             type=[sfx.lstrip(".") for sfx in SUPPORTED_SUFFIXES],
                             help="PDF, DOCX, HTML, TXT or Markdown. The same file uploaded again "
                                  "replaces its earlier version.")
    ocr = st.toggle("Read scanned pages with OCR", value=False, disabled=not ocr_available(),
                    help="Pages without a text layer are read by tesseract: a few seconds per "
                         "page." if ocr_available() else
                         "Needs tesseract: apt-get install tesseract-ocr")
    on_cluster = bool(s.ray_address) and st.toggle(
        f"Ingest on the Ray cluster at {s.ray_address}", value=False, key="on-cluster",
        help="Its workers extract, chunk and embed the files side by side; each document is "
             "then stored here whole. Worth it for many files (RAY_ADDRESS in Settings).")
    if st.button("Add to collection", type="primary", disabled=not files, key="ingest"):
        saved, rows = [], []
        for f, name in zip(files, batch_names([f.name for f in files])):
            try:
                saved.append(save_upload(upload_folder(s.data_dir, current), name, f.getvalue()))
            except UploadError as exc:
                rows.append({"file": name, "status": "error", "error": str(exc)})
        bar = st.progress(0.0, text="Starting…")
        stage_line = st.empty()
        tracker = BatchProgress(saved)

        def show(path: Path, stage: str, ocr_read: float | None = None, doing: str = "") -> None:
            done, eta = tracker.update(path, stage, ocr_read)
            left = f" · about {eta:.0f} s left" if eta is not None else ""
            bar.progress(done, text=f"{done:.0%}{left}")
            stage_line.markdown(f"`{path.name}` — {doing or stage_label(stage, ocr)}")

        def show_ocr(path: Path, read: int, pages: int) -> None:
            show(path, "extract", read / pages, ocr_page_label(read, pages))

        # Said on the stage line, which the first file's first stage replaces: a spinner
        # around the whole batch kept saying it while the files were read and embedded.
        if on_cluster:
            stage_line.caption("Starting the cluster's workers…")
            results = ingest_files_ray(s, saved, current, info.chunk_size, info.chunk_overlap,
                                       on_stage=show, ocr=ocr, address=s.ray_address,
                                       on_ocr_page=show_ocr)
        else:
            stage_line.caption("Loading the embedding model…")
            results = ingest_files(s, saved, current, info.chunk_size, info.chunk_overlap,
                                   on_stage=show, ocr=ocr, on_ocr_page=show_ocr)
        drop_failed_originals(s, current, saved, results)
        bar.progress(1.0, text="Done")
        stage_line.empty()
        st.session_state["ingest-results"] = rows + [r.to_json() for r in results]
        st.session_state["ingested"] = st.session_state.get("ingested", 0) + 1
        st.rerun()  # redraw counts, document list and chunks with the new documents

    results = st.session_state.get("ingest-results")
    if results:
        table = pd.DataFrame(results).reindex(
            columns=["file", "status", "pages", "chunks", "seconds", "extractor", "note", "error"])
        table[["extractor", "note", "error"]] = table[["extractor", "note", "error"]].fillna("")
        ok = (table["status"] == "ok").sum()
        st.markdown(f"**{ok} of {len(table)}** file(s) stored.")
        # each error and note in full in its own box below, not cut short in the table as well
        # ("deep-rules_manuscript.pdf has t…")
        # Narrow columns but the file's: at 1024 pixels, "extractor" was off the table's edge
        st.dataframe(table.drop(columns=["error", "note"]), hide_index=True, width="stretch",
                     column_config={"file": st.column_config.TextColumn(width="medium"),
                                    "status": st.column_config.TextColumn(width="small"),
                                    "pages": st.column_config.NumberColumn(width="small"),
                                    "chunks": st.column_config.NumberColumn(width="small"),
                                    "seconds": st.column_config.NumberColumn(
                                        "time", width="small", format="%.1f s")})
        for error in table.loc[table["status"] != "ok", "error"]:
            st.error(error, icon=":material/error:")
        for file, note in table.loc[(table["status"] == "ok") & (table["note"] != ""),
                                    ["file", "note"]].itertuples(index=False):
            st.info(f"{file}: {note}", icon=":material/info:")

# Documents ---------------------------------------------------------------------------------
docs = store.documents(collection)
st.subheader(f"Documents ({len(docs)})")
if not docs:
    st.info("This collection is empty: add documents above.")
    st.stop()


def labelling(s, current: str, running: bool) -> None:
    """Follows a background classification; polls only while one runs, and reruns the page
    when it ends so the table shows the new labels."""
    status = collection_labels.job_status(s, current) or {}
    if status.get("state") == "running":
        done, total = status.get("done", 0), status.get("total", 0)
        st.progress(done / total if total else 0.0,
                    text=f"Classifying with {status['adapter']} · {status.get('stage', '')} · "
                         f"{done} of {total or '?'}")
    elif running:
        st.rerun(scope="app")
    elif status.get("state") == "done":
        counts = ", ".join(f"{n} {label}" for label, n in sorted(status["labels"].items()))
        st.caption(f"Last run: {status['adapter']} ({status['pages']}) labelled {counts}.")
        if strangers := status.get("unlike"):
            st.warning(f"{len(strangers)} of {status['done']} are unlike the documents "
                       f"{status['adapter']} was trained on, so their labels are guesses: "
                       + ", ".join(strangers[:10]) + (" …" if len(strangers) > 10 else ""),
                       icon=":material/explore_off:")
    elif status.get("state") == "failed":
        st.error(f"Classification with {status['adapter']} failed: {status.get('error')}")
    elif status.get("state") == "interrupted":
        st.warning(f"Classification with {status['adapter']} was interrupted (the process "
                   "running it stopped); the labels are as they were. Start it again.")


adapters = {a.name: a for a in usable(list_adapters(s.models_dir))}
running = (collection_labels.job_status(s, current) or {}).get("state") == "running"
with st.expander("Classify with an adapter", icon=":material/label:"):
    if not adapters:
        st.info("No adapter yet: train one on the Train page.")
    else:
        chooser = st.columns([2, 2, 1], vertical_alignment="bottom")
        adapter = chooser[0].selectbox("Adapter", list(adapters), key="label-adapter",
                                       format_func=lambda n: f"{n} · "
                                       f"{', '.join(adapters[n].labels)}")
        per_page = chooser[1].radio("Read", ["first pages", "each page"], horizontal=True,
                                    key="label-granularity",
                                    help="A document's first pages decide its one label, or "
                                         "each page gets its own.") == "each page"
        first = chooser[2].number_input("Pages", 1, 50, collection_labels.DEFAULT_FIRST_PAGES,
                                        disabled=per_page, key="label-pages")
        if st.button("Classify every document", type="primary", disabled=running,
                     key="label-start"):
            try:
                collection_labels.start_job(
                    s, current, adapter,
                    collection_labels.Pages(None if per_page else int(first)))
            except collection_labels.LabelJobBusy as exc:
                st.error(str(exc))
            else:
                st.rerun()
# Outside the expander, so that progress shows with it closed; an idle page does not poll.
st.fragment(run_every=1 if running else None)(labelling)(s, current, running)

table = pd.DataFrame(docs)
table["label"] = table["labels"].map(", ".join)
columns = ["file", "pages", "chunks"]  # the document's id is for scripts: the CLI shows it
known = store.collection_labels(docs)
if known:
    columns[1:1] = ["label", "label_p"]
    wanted = st.multiselect("Only documents labelled", known, key="label-filter")
    if wanted:
        table = table[table["labels"].map(lambda labels: bool(set(labels) & set(wanted)))]
st.dataframe(table[columns], hide_index=True, width="stretch",
             column_config={"label_p": st.column_config.NumberColumn(
                 "probability", format="percent",
                 help="The label's probability (the lowest over the document's pages)")})
by_file = {d["file"]: d for d in docs}
if st.session_state.get("doc") not in by_file:  # deleted: shown as chosen unless set anew
    st.session_state["doc"] = next(iter(by_file))
picked = st.columns([3, 1, 1], vertical_alignment="bottom")
chosen = picked[0].selectbox("Document", list(by_file), key="doc")
doc = by_file[chosen]
if picked[1].button("Re-index", icon=":material/refresh:", width="stretch"):
    source = upload_folder(s.data_dir, current) / doc["file"]
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

if st.session_state.pop("deleted-close", False):
    # closed after a delete: left open, it offered to delete the next document at once
    st.session_state["delete-ask"] = False
asked = picked[2].popover("Delete", icon=":material/delete:", width="stretch", key="delete-ask",
                          on_change="rerun")
asked.warning(f"{doc['file']} and its {doc['chunks']} chunks leave the collection, and its "
              "upload is removed.", icon=":material/warning:")
if asked.button(f"Delete {doc['file']}", type="primary", key="delete-doc"):
    removed = remove_document(s, collection, doc)
    st.session_state["deleted"] = f"Deleted {doc['file']} ({removed} chunks)"
    st.session_state["deleted-close"] = True
    st.rerun()
if "deleted" in st.session_state:
    st.toast(st.session_state.pop("deleted"))

# Chunk browser -----------------------------------------------------------------------------
chunks = store.chunks_of(collection, doc["doc_id"])
is_paged = paged(doc["pages"])
if is_paged:  # one long page's chart was one bar
    st.plotly_chart(charts.characters_per_page(chunks, f"Characters per page — {chosen}"),
                    width="stretch")

st.subheader("Chunks")
needle = st.text_input("Containing", placeholder="text to look for (any case)",
                       key="chunk-filter")
shown = [c for c in chunks if needle.lower() in c["text"].lower()] if needle else chunks
if not shown:
    st.info(f"No chunk of {chosen} contains “{needle}”.")
    st.stop()
labels = [f"#{c['chunk']}" + (f" · page {c['page']}" if is_paged else "") for c in shown]
# Keyed by the list it picks from: a keyed selectbox holds the label it showed, and one that
# is not in a new list comes back as itself, not as an index.
pick = st.selectbox(f"{len(shown)} of {len(chunks)} chunk(s)", range(len(shown)),
                    format_func=labels.__getitem__, key=f"chunk-pick-{doc['doc_id']}-{needle}")
chunk = shown[pick]
st.caption(f"Chunk {chunk['chunk']} · " + (f"page {chunk['page']} · characters "
           f"{chunk['start']}–{chunk['end']} of the page" if is_paged else
           f"characters {chunk['start']}–{chunk['end']}"))
if above := heading(chunk["text"], chunk.get("title", ""), chunk.get("section", "")):
    st.text(above)
st.text(chunk["text"])  # plain text: document text is never rendered as HTML
by_index = {c["chunk"]: c for c in chunks}
with st.expander("Neighbouring chunks"):
    for offset in (-1, 1):
        near = by_index.get(chunk["chunk"] + offset)
        if near:
            st.caption(f"{'Previous' if offset < 0 else 'Next'}: chunk {near['chunk']}, "
                       f"page {near['page']}")
            st.text(near["text"])

"""Classifying every document of a collection with an adapter, so that the Documents page can
show and filter by label and retrieval can keep to one label ("only Letters").

Each document's first pages are read as one text, or each page on its own; the label and its
probability go onto every chunk of what was read (core.rag.store.write_labels). Here because
it joins both sides: core.rag knows only a generic `label` on chunks, never an adapter.

In the app the work runs on a thread of the server process, so it outlives a page refresh; it
reports to `<data>/labels/<collection>.json`, which any page (or process) reads to follow it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import files
from core.errors import InputError, StudioError
from core.files import check_name, process_alive
from core.rag import store
from core.settings import Settings

DEFAULT_FIRST_PAGES = 2  # a letter, a contract or a paper says what it is on its first page or two

Progress = Callable[[int, int, str], None]  # done, total, stage


class LabelJobBusy(StudioError):
    pass


@dataclass(frozen=True)
class Pages:
    """What is classified: each document's first `first` pages as one text, or (first=None)
    each page on its own, so that every page's chunks get that page's label."""
    first: int | None = DEFAULT_FIRST_PAGES

    @classmethod
    def parse(cls, text: str) -> Pages:
        """`first:N` or `per-page`, as the CLI takes them."""
        if text == "per-page":
            return cls(None)
        name, _, number = text.partition(":")
        if name == "first" and number.isdigit() and int(number) >= 1:
            return cls(int(number))
        raise InputError(f"pages must be first:N (N ≥ 1) or per-page, got {text!r}")

    def __str__(self) -> str:
        return "per-page" if self.first is None else f"first:{self.first}"


@dataclass
class Unit:
    """One text to classify and the chunks that take its label."""
    file: str
    doc_id: str
    page: int | None  # None: the document's first pages together
    text: str
    chunk_ids: list[str]


def units(collection, pages: Pages) -> list[Unit]:
    out = []
    for doc_id, chunks in store.chunks_by_document(collection).items():
        texts = store.page_texts(chunks)
        file = chunks[0]["file"]
        if pages.first is None:
            out += [Unit(file, doc_id, page, texts[page],
                         [c["id"] for c in chunks if c["page"] == page]) for page in sorted(texts)]
        else:
            first = sorted(texts)[:pages.first]
            out.append(Unit(file, doc_id, None, "\n\n".join(texts[p] for p in first),
                            [c["id"] for c in chunks]))
    return sorted(out, key=lambda u: (u.file, u.page or 0))


def classify_collection(settings: Settings, collection_name: str, adapter: str,
                        pages: Pages = Pages(), on_progress: Progress | None = None,
                        chroma=None, classifier=None) -> list[dict]:
    """Label every document (or page) of the collection; one row per text classified. The
    labels are written only after every text was classified, so a failure on the way leaves
    the collection as it was."""
    from core.lora.adapters import load_classifier

    report = on_progress or (lambda done, total, stage: None)
    chroma = chroma or store.client(settings)
    collection = store.get_collection(chroma, collection_name)
    todo = units(collection, pages)
    if not todo:
        raise InputError(f"collection {collection_name!r} holds no document to classify")
    report(0, len(todo), "loading the adapter")
    classifier = classifier or load_classifier(settings.models_dir, adapter=adapter)
    report(0, len(todo), "classifying")
    predictions = classifier.score_many(
        [u.text for u in todo], on_progress=lambda done, total: report(done, total, "classifying"))
    report(len(todo), len(todo), "saving the labels")
    labels: dict[str, tuple[str, float]] = {}
    rows = []
    for unit, prediction in zip(todo, predictions):
        label = prediction.label or ""  # score mode always names one
        p = round(prediction.scores.get(label, 0.0), 4)
        labels.update((chunk_id, (label, p)) for chunk_id in unit.chunk_ids)
        rows.append({"file": unit.file, "doc_id": unit.doc_id, "page": unit.page,
                     "label": label, "p": p, "truncated": prediction.truncated,
                     # None: the adapter keeps no profile of its training documents
                     "familiar": prediction.likeness.familiar if prediction.likeness else None})
    store.write_labels(collection, labels, f"{adapter} ({pages})")
    return rows


def unlike(rows: list[dict]) -> list[str]:
    """The documents (or pages) unlike the adapter's training documents: their labels are
    guesses."""
    return [row["file"] + (f" p.{row['page']}" if row["page"] is not None else "")
            for row in rows if row.get("familiar") is False]


# Background jobs ---------------------------------------------------------------------------
_threads: dict[str, threading.Thread] = {}
_lock = threading.Lock()


def status_path(settings: Settings, collection_name: str) -> Path:
    return settings.data_dir / "labels" / f"{check_name(collection_name, 'collection')}.json"


def job_status(settings: Settings, collection_name: str) -> dict | None:
    """The latest labelling job of the collection: state running, done, failed or interrupted
    (its process ended, or its thread died, before it finished); None when there was none."""
    status = files.read_json(status_path(settings, collection_name))
    if not isinstance(status, dict):
        return None
    if status.get("state") == "running":
        pid = int(status.get("pid", -1))
        thread = _threads.get(collection_name)
        gone = not process_alive(pid) if pid != os.getpid() else not (thread and thread.is_alive())
        if gone:
            status["state"] = "interrupted"
    return status


def start_job(settings: Settings, collection_name: str, adapter: str,
              pages: Pages = Pages()) -> None:
    """Classify the collection on a thread of this process; follow it with `job_status`."""
    path = status_path(settings, collection_name)
    with _lock:
        if (job_status(settings, collection_name) or {}).get("state") == "running":
            raise LabelJobBusy(f"collection {collection_name!r} is being classified already")
        started = time.time()
        base = {"adapter": adapter, "pages": str(pages), "pid": os.getpid(),
                "started": started}
        files.write_json(path, {**base, "state": "running", "done": 0, "total": 0,
                                "stage": "starting"})

        def progress(done: int, total: int, stage: str) -> None:
            files.write_json(path, {**base, "state": "running", "done": done, "total": total,
                                    "stage": stage})

        def work() -> None:
            try:
                rows = classify_collection(settings, collection_name, adapter, pages, progress)
            except Exception as exc:  # reported to whoever looks; the collection is unchanged
                files.write_json(path, {**base, "state": "failed", "error": str(exc)[:500],
                                        "finished": time.time()})
                return
            files.write_json(path, {**base, "state": "done", "done": len(rows),
                                    "total": len(rows), "finished": time.time(),
                                    "labels": dict(Counter(r["label"] for r in rows)),
                                    "unlike": unlike(rows)})

        thread = threading.Thread(target=work, name=f"labels-{collection_name}", daemon=True)
        _threads[collection_name] = thread
        thread.start()

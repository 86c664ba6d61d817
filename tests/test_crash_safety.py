"""Ingestion killed with SIGKILL at chosen points of its writes and at a moment in between: after
each kill the collection holds only whole documents, every document has its kept original,
originals not yet stored are reported, and running the batch again completes it. And writers in
several processes at once on one collection: nothing lost, nothing twice, indexes that agree."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from core.rag.chunking import chunk_pages
from core.rag.extract import extract
from core.rag.ingest import file_sha256
from core.settings import PROJECT_ROOT
from core.uploads import upload_folder
from tests.conftest import shared

PAPERS = ("2505.23724v1.txt", "1406.2661_GAN.pdf")
NAME = "papers"
SIZE, OVERLAP = 2000, 100  # few chunks, few to embed: each run is mostly the process starting


def cli(*args: str, killpoint: tuple[str, int] = ("add", 0)) -> subprocess.CompletedProcess:
    """The CLI in its own process; with a killpoint, SIGKILLed before that Chroma call."""
    module = ["tests.killpoint", killpoint[0], str(killpoint[1])] if killpoint[1] else ["core"]
    return subprocess.run([sys.executable, "-m", *module, *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True)


def clean_counts(paths) -> dict[str, int]:
    """Chunks per document of a clean ingestion, by doc_id."""
    counts = {}
    for path in paths:
        extracted = extract(path)
        counts[file_sha256(path)] = len(chunk_pages(extracted.pages, SIZE, OVERLAP, extracted.title))
    return counts


def agreed_state(data_dir, clean: dict[str, int]) -> tuple[set[str], set[str]]:
    """The stored doc_ids and the names of the originals reported unstored, after checking that
    every stored document is whole and has its original, and that the report is right."""
    kept = {path.name: file_sha256(path) for path in upload_folder(data_dir, NAME).iterdir()
            if not path.name.startswith(".")}
    shown = cli("collections", "show", NAME, "--json")
    if shown.returncode:  # killed before the collection was made
        assert f"no collection named '{NAME}'" in shown.stderr, shown.stderr
        return set(), set(kept)
    info = json.loads(shown.stdout)
    stored = {doc["doc_id"]: doc["chunks"] for doc in info["documents"]}
    assert all(clean[doc_id] == chunks for doc_id, chunks in stored.items()), (stored, clean)
    assert info["chunks"] == sum(stored.values())
    assert set(stored) <= set(kept.values())
    assert set(info["unstored"]) == {name for name, sha in kept.items() if sha not in stored}
    return set(stored), set(info["unstored"])


@pytest.mark.slow
def test_ingestion_survives_kill_9_at_any_point(studio_env):
    papers = [shared("papers", name) for name in PAPERS]
    ingest = ("ingest", *map(str, papers), "--collection", NAME, "--chunk-size", str(SIZE),
              "--chunk-overlap", str(OVERLAP))
    clean = clean_counts(papers)
    txt, gan = clean

    # Before the 3rd write of the first document's chunks: it is undone, both originals wait.
    assert cli(*ingest, killpoint=("add", 3)).returncode == -signal.SIGKILL
    assert agreed_state(studio_env, clean) == (set(), set(PAPERS))
    # The second document written whole, killed before its older versions were deleted and
    # before its pending mark went: finished on the next open.
    started = time.monotonic()
    assert cli(*ingest, killpoint=("delete", 2)).returncode == -signal.SIGKILL
    whole_run = time.monotonic() - started
    assert agreed_state(studio_env, clean) == ({txt, gan}, set())
    # A stored document written again, killed halfway: its earlier version stays, once.
    assert cli(*ingest, killpoint=("add", 2)).returncode == -signal.SIGKILL
    assert agreed_state(studio_env, clean) == ({txt, gan}, set())
    # Killed after the older version was deleted, before the pending mark went.
    assert cli(*ingest, killpoint=("modify", 2)).returncode == -signal.SIGKILL
    assert agreed_state(studio_env, clean) == ({txt, gan}, set())

    # From outside, at a moment no one chose: most of the way through a whole run.
    cli("collections", "delete", NAME)
    assert not upload_folder(studio_env, NAME).exists()
    process = subprocess.Popen([sys.executable, "-m", "core", *ingest], cwd=PROJECT_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.8 * whole_run)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stored, unstored = agreed_state(studio_env, clean)
    assert len(stored) + len(unstored) == len(PAPERS)

    done = cli(*ingest)
    assert done.returncode == 0, done.stderr
    assert agreed_state(studio_env, clean) == ({txt, gan}, set())


# A session deleting a document, as the Documents page does, once the ingestions have stored one.
DELETER = """
import sys, time
from core.rag import store
from core.rag.ingest import remove_document
from core.settings import load_settings

settings, name, file = load_settings(), sys.argv[1], sys.argv[2]
collection = store.get_collection(store.client(settings), name)
deadline = time.monotonic() + 300
while len(store.documents(collection)) < 3 and time.monotonic() < deadline:
    time.sleep(0.05)
[doc] = [d for d in store.documents(collection) if d["file"] == file]
print(remove_document(settings, collection, doc))
"""


@pytest.mark.slow
def test_two_writers_and_a_delete_at_once(studio_env, tmp_path):
    """Two CLI ingestions sharing two files and a page-style delete, all at once on one
    collection: each finishes, every document is there once and whole, the deleted one is gone
    with its original, and the keyword index and the vectors hold the same chunks."""
    from core.rag import bm25, store
    from core.settings import load_settings

    text = shared("papers", "2505.23724v1.txt").read_text(encoding="utf-8")
    parts = []
    for i in range(8):
        parts.append(tmp_path / f"part{i}.txt")
        parts[-1].write_text(text[i * 6000:(i + 1) * 6000], encoding="utf-8")
    clean = clean_counts(parts)
    sizes = ("--collection", NAME, "--chunk-size", str(SIZE), "--chunk-overlap", str(OVERLAP))
    assert cli("ingest", str(parts[0]), str(parts[7]), *sizes).returncode == 0

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    writers = [start("-m", "core", "ingest", *map(str, parts[1:5]), *sizes),
               start("-m", "core", "ingest", *map(str, parts[3:7]), *sizes),
               start("-c", DELETER, NAME, "part0.txt")]
    outcomes = [w.communicate(timeout=600) for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0], outcomes
    assert int(outcomes[2][0]) == clean[file_sha256(parts[0])]

    stored, unstored = agreed_state(studio_env, clean)
    assert stored == {file_sha256(p) for p in parts[1:]} and unstored == set()
    assert not (upload_folder(studio_env, NAME) / "part0.txt").exists()
    settings = load_settings()
    collection = store.get_collection(store.client(settings), NAME)
    ids = set(collection.get(include=[])["ids"])
    nearest = collection.query(query_embeddings=[[1.0] * 384], n_results=len(ids), include=[])
    assert set(nearest["ids"][0]) == ids
    assert set(bm25.bm25_index(collection, settings.indexes_dir).ids) == ids


# A writer storing many small documents, each with made-up vectors: no model, only the writes.
WRITER = """
import sys
from core.rag import store
from core.rag.chunking import chunk_pages
from core.settings import load_settings

name, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
collection = store.get_collection(store.client(load_settings()), name)
for i in range(count):
    chunks = chunk_pages([f"{tag} document {i}. " * 30], 200, 20)
    store.replace_document(collection, f"{tag}{i}", f"{tag}{i}.txt", chunks,
                           [[float(i + 1)] * 8] * len(chunks), 100)
"""


def test_two_writers_keep_each_others_marks_and_revisions(studio_env):
    """Every write changes the collection's metadata twice (its pending mark, then the mark
    withdrawn and a new revision), each a read-modify-write: without the writer lock, two
    processes writing at once lose each other's changes (a withdrawn mark comes back, two
    writes make one revision, and a keyword index then misses chunks)."""
    from core.rag import store
    from core.settings import load_settings

    chroma = store.client(load_settings())
    store.open_collection(chroma, NAME, "all-minilm-l6-v2", 200, 20)
    count = 25
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, NAME, tag, str(count)],
                                cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
               for tag in ("a", "b")]
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    collection = store.get_collection(chroma, NAME)
    assert not [key for key in collection.metadata if key.startswith(store.PENDING)]
    assert store.revision(collection) == 2 * count
    assert len(store.documents(collection)) == 2 * count


@pytest.mark.slow
def test_the_documents_page_stores_what_a_stopped_batch_kept(studio_env):
    """An original kept by a batch that was killed before storing it: the Documents page says
    so and stores it on request."""
    from core.rag import store
    from core.settings import load_settings
    from tests.test_documents_page import button, documents_page

    store.open_collection(store.client(load_settings()), NAME, "all-minilm-l6-v2", SIZE, OVERLAP)
    folder = upload_folder(studio_env, NAME)
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("Attention is all you need. " * 20)
    at = documents_page()
    assert any("1 uploaded file(s) are kept but not in the collection" in w.value and
               "`notes.txt`" in w.value for w in at.warning)
    button(at, "Store them").click().run()
    assert not at.exception
    assert not any("kept but not in the collection" in w.value for w in at.warning)
    results, docs = at.dataframe[0].value, at.dataframe[1].value  # the batch's, the collection's
    assert list(results["status"]) == ["ok"] and list(docs["file"]) == ["notes.txt"]

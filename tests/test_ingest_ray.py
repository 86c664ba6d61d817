"""Ingestion on a real Ray cluster (a head and one worker node on 127.0.0.1, one CPU each) into
a real Chroma server, against the local path on the same files."""

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from core.rag import store
from core.rag.ingest import ingest_files
from core.rag.ingest_ray import RETRIES, RayUnavailable, ingest_files_ray
from core.settings import load_settings
from tests.conftest import ROOT, shared
from tests.servers import free_port, ray_cluster

# Small on purpose: each Ray worker loads the embedding model once per run.
PAPERS = ("1406.2661_GAN.pdf", "2505.23724v1.txt")


def test_an_address_where_no_cluster_answers_fails_in_seconds(studio_env):
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(RayUnavailable, match=f"no Ray cluster answers at {address}"):
        ingest_files_ray(load_settings(), [], "papers", address=address)
    assert not (studio_env / "chroma").exists()  # nothing was created


def test_the_command_says_in_one_line_when_no_cluster_answers(studio_env, tmp_path):
    paper = tmp_path / "notes.txt"
    paper.write_text("some words")
    address = f"127.0.0.1:{free_port()}"
    run = subprocess.run([sys.executable, "-m", "core", "ingest", str(paper), "--collection",
                          "papers", "--ray", address], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and not run.stdout
    assert run.stderr.startswith(f"error: no Ray cluster answers at {address}")
    assert len(run.stderr.splitlines()) == 1


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    papers = [shared("papers", name) for name in PAPERS]
    folder = tmp_path_factory.mktemp("more")
    bad, twin = folder / "truncated.pdf", folder / "copy.pdf"
    bad.write_bytes(papers[0].read_bytes()[:4000])
    twin.write_bytes(papers[0].read_bytes())
    return [*papers, bad, twin]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ray_cluster(tmp_path_factory.mktemp("ray-logs"), cpus=(1, 1)) as address:
        yield address


@pytest.fixture(scope="module")
def local(files, tmp_path_factory):
    """The local path's results and chunks, in embedded Chroma."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_DATA_DIR", str(tmp_path_factory.mktemp("local-data")))
        for name in ("CHROMA_HOST", "RAY_ADDRESS", "STUDIO_EMBEDDING_MODEL", "STUDIO_MODELS_DIR"):
            mp.delenv(name, raising=False)
        settings = load_settings()
        results = ingest_files(settings, files, "papers")
        return results, _chunks(store.get_collection(store.client(settings), "papers"))


def _chunks(collection) -> dict[tuple[str, int], dict]:
    """Every chunk by (document, index): its text, metadata (less the write's generation) and
    vector; each document must be one generation, i.e. whole."""
    got = collection.get(include=["documents", "metadatas", "embeddings"])
    chunks, generations = {}, {}
    for id_, text, meta, vector in zip(got["ids"], got["documents"], got["metadatas"],
                                       got["embeddings"], strict=True):
        doc_id, generation, index = id_.split(":")
        assert int(index) == meta["chunk"] and generation == meta["generation"]
        generations.setdefault(doc_id, set()).add(generation)
        chunks[doc_id, int(index)] = {"text": text, "vector": vector,
                                      "meta": {k: v for k, v in meta.items() if k != "generation"}}
    assert all(len(g) == 1 for g in generations.values()), generations
    return chunks


@pytest.fixture
def server_settings(studio_env, chroma_server, monkeypatch):
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", str(chroma_server))
    return load_settings()


def _same_results(got, want) -> None:
    row = lambda r: {k: v for k, v in r.to_json().items() if k != "seconds"}  # noqa: E731
    assert [row(r) for r in got] == [row(r) for r in want]


@pytest.mark.slow
def test_cluster_ingests_the_same_chunks_and_reports_bad_files_as_the_local_path(
        cluster, server_settings, files, local):
    want_results, want_chunks = local
    stages = []
    results = ingest_files_ray(server_settings, files, "papers", address=cluster,
                               on_stage=lambda path, stage: stages.append((path.name, stage)))

    _same_results(results, want_results)
    assert results[2].error.startswith("truncated.pdf: the PDF is damaged")
    assert results[3].note == f"same content as {PAPERS[0]}: stored once"
    assert not (server_settings.data_dir / "chroma").exists()  # all went to the server
    got = _chunks(store.get_collection(store.client(server_settings), "papers"))
    assert got.keys() == want_chunks.keys()
    for key, chunk in got.items():
        assert chunk["text"] == want_chunks[key]["text"]
        assert chunk["meta"] == want_chunks[key]["meta"]
        # One thread a worker against the local path's two sum in another order: in bf16 the
        # same vectors up to rounding (cosine 0.998 seen).
        assert sum(a * b for a, b in zip(chunk["vector"], want_chunks[key]["vector"],
                                         strict=True)) > 0.99
    assert stages == [(name, stage) for name in (*PAPERS, "truncated.pdf")
                      for stage in ("extract", "store")][:-1]  # the bad file is never stored


@contextmanager
def killing_workers(times: int):
    """SIGKILL a worker of the cluster (this process's descendants) whenever one is running a
    file's task, `times` times at most; yields the pids killed."""
    this, killed, done = psutil.Process(os.getpid()), [], threading.Event()

    def hunt():
        while len(killed) < times and not done.is_set():
            try:
                procs = this.children(recursive=True)
            except psutil.Error:  # a process went while the tree was read: read it again
                continue
            for proc in procs:
                try:
                    if proc.pid not in killed and "_prepare_remote" in " ".join(proc.cmdline()):
                        proc.send_signal(signal.SIGKILL)
                        killed.append(proc.pid)
                except psutil.Error:  # gone, or a zombie, between the listing and here
                    pass
            time.sleep(0.02)

    hunter = threading.Thread(target=hunt, daemon=True)
    hunter.start()
    try:
        yield killed
    finally:
        done.set()
        hunter.join()


@pytest.mark.slow
def test_a_worker_killed_mid_file_loses_nothing(cluster, server_settings, files, local):
    want_results, want_chunks = local
    with killing_workers(1) as killed:
        results = ingest_files_ray(server_settings, files[:2], "papers", address=cluster)

    assert killed, "no worker was seen preparing a file"
    _same_results(results, want_results[:2])
    got = _chunks(store.get_collection(store.client(server_settings), "papers"))
    assert got.keys() == {k for k in want_chunks if k[0] in {r.doc_id for r in results}}


@pytest.mark.slow
def test_a_file_whose_worker_dies_on_every_try_is_reported(cluster, server_settings, files):
    with killing_workers(RETRIES + 1) as killed:
        [result] = ingest_files_ray(server_settings, files[1:2], "papers", address=cluster)

    assert len(killed) == RETRIES + 1, result
    assert result.status == "error" and result.error.startswith(
        f"{PAPERS[1]}: its Ray worker was lost {RETRIES + 1} times")
    assert store.get_collection(store.client(server_settings), "papers").count() == 0


@pytest.mark.slow
def test_a_workers_scanned_pages_are_reported_as_it_reads_them(cluster, server_settings):
    """The Documents page's bar follows the pages OCR reads on the cluster as it does on this
    machine; it stood still for the whole file."""
    from core.rag.extract import ocr_available

    if not ocr_available():
        pytest.skip("tesseract is not installed (make test installs it)")
    scan = shared("documents", "2106.09685v2_pages1-2_image-only.pdf")
    read = []
    [result] = ingest_files_ray(server_settings, [scan], "scans", address=cluster, ocr=True,
                                on_ocr_page=lambda path, done, pages: read.append(
                                    (path.name, done, pages)))
    assert result.status == "ok" and result.extractor == "tika + OCR (2 pages)"
    assert read[0] == (scan.name, 0, 2) and (scan.name, 1, 2) in read, read
    assert read == sorted(read)  # never backwards

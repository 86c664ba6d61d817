"""Ingestion on a Ray cluster: each file is extracted, chunked and embedded by a Ray task
(`ingest.prepare_document`, the local path's own code) on whichever worker is free, and this
process writes each prepared document whole into the collection (`ingest.store_document`), in
the order the files were given, so results, twins and progress read as in the local path.

Files travel to the workers as bytes through Ray's object store: the workers need the Studio's
virtualenv and models, not this machine's file system."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import StudioError
from core.rag import store
from core.rag.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from core.rag.ingest import (
    FILE_ERRORS,
    FileOcrPageFn,
    FileResult,
    PreparedDocument,
    StageFn,
    failure,
    file_sha256,
    prepare_document,
    same_content,
    store_document,
)
from core.registry import Registry
from core.settings import Settings
from core.uploads import check_size

# A file whose worker dies (killed, out of memory, its machine gone) is prepared again on
# another worker this many times before it is reported.
RETRIES = 2
PAGES_EVERY_S = 0.5  # how often the scanned pages a worker has read with OCR are looked at


class RayUnavailable(StudioError):
    pass


class WorkerLost(StudioError):
    pass


def _prepare_remote(name: str, data: bytes, doc_id: str, model_name: str, chunk_size: int,
                    chunk_overlap: int, ocr: bool, pages=None) -> PreparedDocument:
    """A Ray task, run with the worker's own settings: its models folder and Tika. Each scanned
    page it reads with OCR goes to `pages` (a Ray queue) as (doc_id, read, in all)."""
    from core.rag.embeddings import get_embedder
    from core.settings import load_settings

    settings = load_settings()
    # get_embedder keeps loaded models per process and Ray reuses a worker process for the
    # next task, so each worker loads the model once, not once a file.
    embedder = get_embedder(settings, model_name)
    with tempfile.TemporaryDirectory(prefix="studio-ingest-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return prepare_document(
            path, doc_id, embedder, chunk_size, chunk_overlap, ocr, settings.tika_server_url,
            on_ocr_page=lambda _, read, scanned: pages.put((doc_id, read, scanned))
            if pages is not None else None)


@contextmanager
def connected(address: str | None, log_dir: Path) -> Iterator[None]:
    """Connected to the cluster at `address`, or to a Ray instance started here on all cores;
    Ray's own messages go to <data>/logs/ray.log, not to the terminal."""
    import ray

    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "ray.log")
    ray_logger = logging.getLogger("ray")
    ray_logger.addHandler(handler)
    # "local" and never None: None would join whatever cluster `ray start` left on this machine.
    options = ({"address": address} if address else
               {"address": "local", "num_cpus": os.cpu_count(), "include_dashboard": False})
    try:
        try:
            with warnings.catch_warnings():
                # A tip about GPUs, which ingestion does not use, printed on every start.
                warnings.filterwarnings("ignore", "Tip: In future versions of Ray",
                                        FutureWarning)
                ray.init(**options, configure_logging=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            # RuntimeError: this process is already connected (one Ray ingestion at a time).
            raise RayUnavailable(f"could not join the Ray cluster at {address or 'here'} "
                                 f"({exc})") from exc
        try:
            yield
        finally:
            ray.shutdown()
    finally:
        ray_logger.removeHandler(handler)
        handler.close()


def _check_reachable(address: str) -> None:
    """Fail in seconds: ray.init retries an address where nothing answers for minutes."""
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise RayUnavailable(f"no Ray cluster answers at {address} ({exc}); start one with "
                             "`ray start --head` there, give its head as host:port, or leave "
                             "out the address to run on this machine's cores") from exc


def ingest_files_ray(settings: Settings, paths: list[Path], collection_name: str,
                     chunk_size: int = DEFAULT_CHUNK_SIZE,
                     chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
                     on_stage: StageFn = lambda path, stage: None, ocr: bool = False,
                     address: str | None = None,
                     on_ocr_page: FileOcrPageFn = lambda path, done, pages: None
                     ) -> list[FileResult]:
    """`ingest.ingest_files` with the preparing spread over a Ray cluster (`address`, else
    a local instance). on_stage sees "extract" when a file becomes the one waited for and
    "store" when it is written: the stages in between run elsewhere; on_ocr_page sees the
    scanned pages of the file waited for as a worker reads them."""
    if address:
        _check_reachable(address)
    chroma = store.client(settings)
    registry = Registry.load(settings.registry_path, settings.models_dir)
    # The model is loaded on the workers only; this process just names it.
    model_name = registry.get(store.built_with(chroma, collection_name)
                              or settings.embedding_model).name
    collection = store.open_collection(chroma, collection_name, model_name, chunk_size,
                                       chunk_overlap)
    batch = chroma.get_max_batch_size()
    with connected(address, settings.data_dir / "logs"):
        import ray
        from ray.util.queue import Queue

        task = ray.remote(_prepare_remote).options(max_retries=RETRIES, num_cpus=1)
        # Off the workers' CPUs: a queue that took one would leave a one-CPU cluster no worker
        pages = Queue(actor_options={"num_cpus": 0}) if ocr else None
        read: dict[str, tuple[int, int]] = {}  # doc id -> its scanned pages read, in all
        # Enough files in flight to keep every worker busy while this process waits for the
        # next file in order, few enough that prepared documents do not pile up in memory.
        ahead = max(4, 2 * int(ray.cluster_resources().get("CPU", 1)))
        firsts: dict[str, FileResult] = {}  # by doc_id: the same bytes are prepared once
        pending: deque = deque()  # (path, result, task reference or None), in input order
        results: list[FileResult] = []

        def submit(path: Path) -> None:
            result, ref = FileResult(file=path.name, status="error"), None
            try:
                check_size(path.name, path.stat().st_size)
                result.doc_id = doc_id = file_sha256(path)
                if doc_id not in firsts:
                    firsts[doc_id] = result
                    ref = task.remote(path.name, path.read_bytes(), doc_id, model_name,
                                      chunk_size, chunk_overlap, ocr, pages)
            except FILE_ERRORS as exc:
                result.error = failure(path.name, exc)
            pending.append((path, result, ref))

        def collect() -> None:
            path, result, ref = pending.popleft()
            started = time.perf_counter()
            try:
                if ref is not None:
                    on_stage(path, "extract")
                    if result.doc_id in read:  # read while an earlier file was waited for
                        on_ocr_page(path, *read[result.doc_id])
                    while pages is not None and not ray.wait([ref], timeout=PAGES_EVERY_S)[0]:
                        while not pages.empty():
                            doc_id, done, scanned = pages.get_nowait()
                            read[doc_id] = (done, scanned)
                            if doc_id == result.doc_id:
                                on_ocr_page(path, done, scanned)
                    doc = _prepared(ref, path.name)
                    result.seconds = doc.seconds
                    on_stage(path, "store")
                    store_document(settings, collection, doc, batch, result)
                elif result.error is None:
                    result = same_content(firsts[result.doc_id], path.name)
            except (*FILE_ERRORS, WorkerLost) as exc:
                result.error = failure(path.name, exc)
            result.seconds = round(result.seconds + time.perf_counter() - started, 3)
            results.append(result)

        for path in paths:
            submit(Path(path))
            if len(pending) >= ahead:
                collect()
        while pending:
            collect()
    return results


def _prepared(ref, file: str) -> PreparedDocument:
    """The task's document; its file error raised as the local path raises it."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        if isinstance(exc.cause, FILE_ERRORS):
            raise exc.cause from None
        raise
    except RayError as exc:  # the worker died on every try: nothing of the file was stored
        raise WorkerLost(f"{file}: its Ray worker was lost {RETRIES + 1} times "
                         f"({type(exc).__name__}); the file was not stored") from exc

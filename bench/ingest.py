"""Studio ingestion against the reference notebook's pipeline, in the same run.

Studio:   its own path (core.rag.ingest.prepare_document): Tika per page → the Studio's chunker
          (paragraphs packed to 500 characters, 50 overlap, title and section in each chunk's
          embedded text) → MiniLM (batched, normalised; the engine `auto` picks for this CPU,
          or the one --engine names) → embedded Chroma (persistent, in a temp dir).
Baseline: pypdf text per page (what PyPDFLoader does) → the same splitter →
          HuggingFaceEmbeddings(all-MiniLM-L6-v2) with defaults → InMemoryVectorStore.

For each paper in ../shared/data/papers: extraction pages/s, embedding chunks/s and end-to-end
seconds for both (chunks/s covers chunking, embedding and storing); the ratio is baseline
seconds / Studio seconds. The embedding engine matters most and depends on the CPU: the table
header names the engine that ran and the CPU's relevant flags; `--engine onnx` or `torch-fp32`
shows on a CPU with AVX512-bf16 what one without it would run (the auto choice there is ONNX).
Extraction quality: word-level similarity of pages 1–2 of the LoRA paper to their ground-truth
text. That text matches pypdf's output word for word, so it was likely made with pypdf and
flatters the baseline: read it as "how close Tika comes", not as a contest. Prints a table, then JSON.

With --ray: documents/s of the Studio's local path against the same files on a Ray cluster
started here (tests/servers.py) with 1 and 2 workers of one CPU each, every run cold (each
worker loads the embedding model once), into embedded Chroma; then the write rate of a Chroma
server (`chroma run`) and of embedded Chroma for those chunks, the ceiling for many workers.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-ingest-")

from core.health import cpu_flags
from core.rag import store
from core.rag.embeddings import get_embedder
from core.rag.extract import extract
from core.rag.ingest import prepare_document
from core.registry import Registry
from core.settings import EMBEDDING_ENGINES, load_settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni")


def studio(path: Path, settings, embedder, collection, batch) -> dict:
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    doc = prepare_document(path, path.name, embedder, 500, 50, False, settings.tika_server_url,
                           lambda _, stage: stages.setdefault(stage, time.perf_counter()))
    prepared = time.perf_counter()
    store.replace_document(collection, doc.doc_id, doc.file, doc.chunks, doc.vectors, batch)
    t3 = time.perf_counter()
    return {"pages": doc.pages, "chunks": len(doc.chunks),
            "extract_s": stages["chunk"] - t0, "index_s": t3 - stages["chunk"],
            "embed_s": prepared - stages["embed"], "store_s": t3 - prepared, "total_s": t3 - t0}


def baseline(path: Path, embeddings) -> dict:
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from pypdf import PdfReader

    t0 = time.perf_counter()
    pages = [Document(page.extract_text() or "", metadata={"page": i})
             for i, page in enumerate(PdfReader(path).pages)]
    t1 = time.perf_counter()
    chunks = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50) \
        .split_documents(pages)
    t2 = time.perf_counter()
    InMemoryVectorStore(embeddings).add_documents(chunks)  # embeds, then stores
    t3 = time.perf_counter()
    return {"pages": len(pages), "chunks": len(chunks),
            "extract_s": t1 - t0, "index_s": t3 - t2, "total_s": t3 - t0}


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def fidelity() -> dict:
    from pypdf import PdfReader

    truth = words((SHARED / "documents" / "2106.09685v2_pages1-2_groundtruth.txt").read_text())
    pdf = SHARED / "papers" / "2106.09685v2.pdf"
    tika = words("\n".join(extract(pdf).pages[:2]))
    pypdf = words("\n".join(p.extract_text() for p in PdfReader(pdf).pages[:2]))
    ratio = lambda got: difflib.SequenceMatcher(None, truth, got, autojunk=False).ratio()  # noqa: E731
    return {"studio_tika": ratio(tika), "baseline_pypdf": ratio(pypdf)}


def main() -> None:
    from langchain_huggingface import HuggingFaceEmbeddings

    settings = load_settings()
    registry = Registry.load(settings.registry_path, settings.models_dir)
    model_path = str(registry.load_path(registry.get(settings.embedding_model)))
    embedder = get_embedder(settings)
    baseline_embeddings = HuggingFaceEmbeddings(model_name=model_path)
    chroma = store.client(settings)
    collection = store.open_collection(chroma, "bench", embedder.model_name, 500, 50)
    batch = chroma.get_max_batch_size()
    embedder.embed(["warm-up"] * 8)
    baseline_embeddings.embed_documents(["warm-up"] * 8)

    rows = []
    for pdf in sorted((SHARED / "papers").glob("*.pdf")):
        s = studio(pdf, settings, embedder, collection, batch)
        b = baseline(pdf, baseline_embeddings)
        rows.append({"paper": pdf.name, "studio": s, "baseline": b,
                     "speedup": b["total_s"] / s["total_s"]})

    head = (f"{'paper':<42}{'pages':>6}{'chunks S/B':>12}{'pages/s S':>11}{'pages/s B':>11}"
            f"{'chunks/s S':>12}{'chunks/s B':>12}{'ratio':>7}")
    flags = sorted(set(FLAGS) & cpu_flags())
    print(f"Studio embedding engine: {embedder.engine}; CPU flags: {', '.join(flags) or 'none'}"
          f"; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(head)
    for r in rows:
        s, b = r["studio"], r["baseline"]
        print(f"{r['paper'][:41]:<42}{s['pages']:>6}{s['chunks']:>6}/{b['chunks']:<5}"
              f"{s['pages'] / s['extract_s']:>11.1f}{b['pages'] / b['extract_s']:>11.1f}"
              f"{s['chunks'] / s['index_s']:>12.1f}{b['chunks'] / b['index_s']:>12.1f}"
              f"{r['speedup']:>6.2f}x")
    total_s = sum(r["studio"]["total_s"] for r in rows)
    total_b = sum(r["baseline"]["total_s"] for r in rows)
    spent = {k: sum(r["studio"][f"{k}_s"] for r in rows) / total_s
             for k in ("extract", "embed", "store")}
    print("Studio's time: " + ", ".join(f"{k} {v:.0%}" for k, v in spent.items())
          + f"; the baseline's: extract "
          f"{sum(r['baseline']['extract_s'] for r in rows) / total_b:.0%}")
    quality = fidelity()
    print(f"end to end, all papers: Studio {total_b / total_s:.2f}x the baseline's throughput")
    print(f"extraction fidelity vs ground truth (LoRA pp. 1-2): Tika {quality['studio_tika']:.3f}, "
          f"pypdf {quality['baseline_pypdf']:.3f}")
    print(json.dumps({"rows": rows, "overall_speedup": total_b / total_s,
                      "embedding_engine": embedder.engine, "cpu_flags": flags,
                      "extraction_fidelity": quality}))


def write_rate(collection, chunks: dict, batch: int) -> float:
    """Chunks/s written to `collection` (Chroma's add, in batches, as ingestion writes)."""
    t0 = time.perf_counter()
    for i in range(0, len(chunks["ids"]), batch):
        sl = slice(i, i + batch)
        collection.add(ids=chunks["ids"][sl], embeddings=chunks["embeddings"][sl],
                       documents=chunks["documents"][sl], metadatas=chunks["metadatas"][sl])
    return len(chunks["ids"]) / (time.perf_counter() - t0)


def ray_main() -> None:
    from core.rag.ingest import ingest_files
    from core.rag.ingest_ray import ingest_files_ray
    from tests.servers import free_port, ray_cluster, running

    settings = load_settings()
    files = sorted((SHARED / "papers").iterdir())
    load_before = os.getloadavg()
    rows = []

    def run(path: str, workers: int | None, ingest, *args, **kwargs) -> None:
        load = os.getloadavg()[0]  # other work on the machine skews each row differently
        t0 = time.perf_counter()
        results = ingest(settings, files, *args, **kwargs)
        seconds = time.perf_counter() - t0
        assert all(r.status == "ok" for r in results), [r.error for r in results]
        rows.append({"path": path, "workers": workers, "docs": len(results),
                     "chunks": sum(r.chunks for r in results), "seconds": seconds,
                     "docs_per_s": len(results) / seconds, "load_before": load})

    run("local", None, ingest_files, "local")  # one process, torch on every core
    for cpus in ((1,), (1, 1)):
        with tempfile.TemporaryDirectory() as logs, ray_cluster(Path(logs), cpus) as address:
            run("ray", len(cpus), ingest_files_ray, f"ray-{len(cpus)}", address=address)

    chroma = store.client(settings)
    chunks = chroma.get_collection("local").get(include=["embeddings", "documents", "metadatas"])
    batch = chroma.get_max_batch_size()
    rates = {"embedded": write_rate(chroma.create_collection("write-rate"), chunks, batch)}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        command = [str(Path(sys.executable).with_name("chroma")), "run", "--path", tmp,
                   "--host", "127.0.0.1", "--port", str(port)]
        with running(command, f"http://127.0.0.1:{port}/api/v2/heartbeat",
                     Path(tmp) / "chroma.log"):
            import chromadb

            server = chromadb.HttpClient(host="127.0.0.1", port=port)
            rates["server"] = write_rate(server.create_collection("write-rate"), chunks,
                                         server.get_max_batch_size())

    print(f"{'path':<8}{'workers':>8}{'docs':>6}{'chunks':>8}{'seconds':>9}{'docs/s':>8}"
          f"{'load':>6}")
    for r in rows:
        print(f"{r['path']:<8}{r['workers'] or '-':>8}{r['docs']:>6}{r['chunks']:>8}"
              f"{r['seconds']:>9.1f}{r['docs_per_s']:>8.3f}{r['load_before']:>6.1f}")
    print(f"Chroma writes: server {rates['server']:.0f} chunks/s, embedded "
          f"{rates['embedded']:.0f} chunks/s; load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    print(json.dumps({"rows": rows, "chroma_write_chunks_per_s": rates,
                      "load_average_before": load_before, "load_average_after": os.getloadavg(),
                      "cpus": os.cpu_count()}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray", action="store_true",
                        help="the local path against a Ray cluster of 1 and 2 workers")
    parser.add_argument("--engine", choices=EMBEDDING_ENGINES,
                        help="pin the Studio's embedding engine (default: the settings', auto)")
    args = parser.parse_args()
    if args.engine:
        os.environ["STUDIO_EMBEDDING_ENGINE"] = args.engine
    if args.ray:
        ray_main()
    else:
        main()

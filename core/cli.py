"""`python -m core …`: the command-line face of the Studio. Each subcommand is a thin wrapper
around the same core functions the pages call."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from core.adapters import AdapterError
from core.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from core.config import load_settings
from core.registry import Registry, RegistryError
from core.store import StoreError
from core.training.jobs import RunBusy


def _registry() -> Registry:
    settings = load_settings()
    return Registry.load(settings.registry_path, settings.models_dir)


def cmd_models_list(args: argparse.Namespace) -> int:
    states = _registry().states()
    if args.role:
        states = [s for s in states if args.role in s.roles]
    if args.json:
        for state in states:
            print(json.dumps(state.to_json()))
        return 0
    width = max(len(s.name) for s in states)
    for s in states:
        size = f"{s.size_bytes / 2**20:8.1f} MiB" if s.size_bytes else " " * 12
        roles = ",".join(s.roles)
        note = f"  ({s.detail})" if s.detail else ""
        print(f"{s.name:<{width}}  {roles:<16} {s.status:<8} {size}  {s.path or ''}{note}")
    return 0 if all(s.status == "ready" for s in states) else 1


def cmd_models_prepare(args: argparse.Namespace) -> int:
    from core.prepare import PrepareEvent, prepare

    last: dict[str, int] = {}

    def show(event: PrepareEvent) -> None:
        # One line per tenth of progress keeps logs readable on a non-tty (CI).
        bucket = int(event.fraction * 10)
        key = f"{event.model}:{event.stage}"
        if last.get(key) == bucket and event.stage not in ("done", "skip"):
            return
        last[key] = bucket
        print(f"[{event.model}] {event.stage:<8} {event.fraction:4.0%} {event.message}",
              file=sys.stderr, flush=True)

    registry = _registry()
    worked = prepare(registry, args.names or None, progress=show)
    print(f"prepared {len(worked)} model(s); {len(registry.specs) - len(worked)} already done "
          "or not packaged", file=sys.stderr)
    return 0


def _walk(paths: list[str]) -> list[Path]:
    """Files as given, folders walked (hidden files skipped), in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*")
                            if p.is_file() and not any(part.startswith(".") for part in p.parts))
        else:
            found.append(path)
    return found


def cmd_ingest(args: argparse.Namespace) -> int:
    from core.ingest import ingest_files

    files = _walk(args.paths)
    results = ingest_files(load_settings(), files, args.collection, args.chunk_size,
                           args.chunk_overlap, ocr=args.ocr)
    failed = [r for r in results if r.status != "ok"]
    for r in results:
        if args.json:
            print(json.dumps(r.to_json()))
        else:
            print(f"{r.status:<5} {r.file}: {r.pages} pages, {r.chunks} chunks, "
                  f"{r.seconds:.1f} s" + (f" — {r.error}" if r.error else ""))
    summary = {"summary": {"files": len(results), "ok": len(results) - len(failed),
                           "failed": len(failed), "collection": args.collection}}
    print(json.dumps(summary) if args.json else
          f"{summary['summary']['ok']} of {len(results)} file(s) stored in '{args.collection}'")
    return 1 if failed else 0


def cmd_collections(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from core import store
    from core.uploads import forget_uploads

    chroma = store.client(load_settings())
    if args.action == "list":
        rows = [asdict(c) for c in store.list_collections(chroma)]
        for row in rows:
            print(json.dumps(row) if args.json else
                  f"{row['name']}: {row['chunks']} chunks ({row['embedding_model']}, "
                  f"chunks of {row['chunk_size']}/{row['chunk_overlap']})")
    elif args.action == "show":
        collection = store.get_collection(chroma, args.name)
        info = {**asdict(store.describe(collection)), "documents": store.documents(collection)}
        print(json.dumps(info, indent=None if args.json else 2))
    else:
        store.delete_collection(chroma, args.name)
        forget_uploads(load_settings().data_dir, args.name)
        print(json.dumps({"deleted": args.name}) if args.json else f"deleted {args.name}")
    return 0


def _retrieval_options(args: argparse.Namespace):
    from core.retrieval import RetrievalOptions

    return RetrievalOptions(k=args.k, method=args.method, mmr=args.mmr,
                            min_score=args.min_score)


def cmd_search(args: argparse.Namespace) -> int:
    from core.retrieval import search

    result = search(load_settings(), args.collection, args.question, _retrieval_options(args))
    rows = [hit.to_json() for hit in result.hits]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{len(rows)} chunk(s), {result.seconds * 1000:.0f} ms; score = {result.score_meaning}")
    for row in rows:
        text = " ".join(row["text"].split())
        print(f"[{row['rank']}] {row['score']:.3f} {row['retriever']:<5} {row['doc']} "
              f"p.{row['page']}: {text[:160]}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from core.llm import ChatError, get_engine
    from core.rag import RagTurn

    settings = load_settings()
    try:
        engine = get_engine(settings, backend=args.engine, model=args.model)
        turn = RagTurn(settings, args.collection, args.question, engine,
                       _retrieval_options(args), max_new_tokens=args.max_tokens)
        for piece in turn.stream():
            if not args.json:
                print(piece, end="", flush=True)
    except ChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    answer = turn.result()
    if args.json:
        print(json.dumps(answer.to_json()))
        return 0
    how = "inferred" if answer.citations_inferred else "cited"
    print(f"\n\n{how}: {answer.cited or 'none'}; {answer.timings}")
    for hit in answer.sources:
        mark = "*" if hit.rank in answer.cited else " "
        print(f"{mark}[{hit.rank}] {hit.score:.3f} {hit.doc} p.{hit.page}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from core.training import jobs
    from core.training.config import TrainConfig, from_preset
    from core.training.trainer import train

    settings = load_settings()
    if args.config:
        config = TrainConfig.load(Path(args.config))
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("data", "name") if not getattr(args, n)]
        if missing:
            raise ValueError(f"train needs --config RUN.yaml, or {' and '.join(missing)}")
        config = from_preset(args.preset, name=args.name, data=args.data,
                             text_col=args.text_col, label_col=args.label_col,
                             base=args.base or settings.lora_base_model,
                             max_steps=args.max_steps)
    run_dir = jobs.run_dir(settings, config.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Under `accelerate launch` every process runs this; the first one holds the lock, prints
    # and publishes the adapter.
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        jobs.acquire(settings, config.name)
    try:
        adapter = train(config, run_dir, settings.models_dir, resume=args.resume,
                        on_metrics=_print_progress if main_process else None)
    except Exception as exc:  # the page and `runs show` must see why; checkpoints stay
        if main_process:
            (run_dir / "status.json").write_text(json.dumps(
                {**jobs.read_status(run_dir), "state": "failed", "error": str(exc)}))
        raise
    finally:
        if main_process:
            jobs.release(settings)
    if not main_process:
        return 0
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    result = {"adapter": str(adapter), "run": str(run_dir),
              "test": {which: {k: evaluation[which][k] for k in ("accuracy", "macro_f1")}
                       for which in ("adapter", "zero_shot", "baseline")},
              "test_size": evaluation["test_size"]}
    print(json.dumps(result) if args.json else
          f"adapter saved to {adapter}\ntest accuracy ({result['test_size']} examples): " +
          ", ".join(f"{k.replace('_', '-')} {v['accuracy']:.0%}" for k, v in result["test"].items()))
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from core.training.config import TrainConfig
    from core.training.estimate import measure, model_size

    settings = load_settings()
    config = TrainConfig.load(Path(args.config))
    calibration = measure(config, settings.models_dir)
    if args.json:
        print(json.dumps(asdict(calibration)))
        return 0
    size = model_size(config, settings.models_dir)
    print(f"trainable parameters: {size.trainable:,} of {size.total:,}; adapter "
          f"{size.adapter_bytes / 1e6:.1f} MB\n{calibration.seconds_per_step} s/step × "
          f"{calibration.steps} steps ≈ {calibration.seconds / 60:.1f} min; peak memory "
          f"{calibration.peak_memory_bytes / 2**30:.1f} GiB")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    import time

    from core.adapters import load_classifier
    from core.extract import ExtractionError, extract
    from core.uploads import UploadError, check_size

    settings = load_settings()
    classifier = load_classifier(settings.models_dir, adapter=args.adapter)
    failed = 0
    for path in _walk(args.files):
        started = time.perf_counter()
        try:
            check_size(path.name, path.stat().st_size)
            text = extract(path, tika_url=settings.tika_server_url).text
            result = classifier.classify(text, mode=args.mode)
            row = {"file": path.name, "label": result.label, "scores": result.scores,
                   "seconds": round(time.perf_counter() - started, 3),
                   "truncated": result.truncated}
            if result.error:
                row["error"] = result.error
        except (ExtractionError, UploadError, OSError, ValueError) as exc:
            row = {"file": path.name, "error": str(exc)}
        failed += "error" in row
        if args.json:
            print(json.dumps(row), flush=True)
        elif "error" in row:
            print(f"{row['file']}: error: {row['error']}", flush=True)
        else:
            top = row["scores"].get(row["label"])
            print(f"{row['file']}: {row['label']}" + (f" ({top:.0%})" if top else "")
                  + f" in {row['seconds']:.2f} s", flush=True)
    return 1 if failed else 0


def cmd_adapters(args: argparse.Namespace) -> int:
    from core import adapter_ops
    from core.adapters import get, list_adapters

    settings = load_settings()
    models = settings.models_dir
    needs = {"show": 1, "rename": 2, "delete": 1, "export": 1, "import": 1, "merge": 1}
    if len(args.names) < needs.get(args.action, 0):
        raise ValueError(f"adapters {args.action} needs {needs[args.action]} name(s)")

    def out(obj, text: str) -> None:
        print(json.dumps(obj) if args.json else text)

    if args.action == "list":
        for info in list_adapters(models):
            row = info.summary()
            acc = row["test_accuracy"]
            out(row, f"{row['name']}: base {row['base']}, {len(row['labels'])} labels, r={row['r']}"
                     + (f", test accuracy {acc:.0%}" if acc is not None else ""))
    elif args.action == "show":
        info = get(models, args.names[0])
        print(json.dumps({**info.meta, "folder": str(info.folder), "size_bytes": info.size_bytes},
                         indent=None if args.json else 2))
    elif args.action == "rename":
        target = adapter_ops.rename(models, args.names[0], args.names[1])
        out({"renamed": args.names[0], "to": target.name}, f"renamed to {target.name}")
    elif args.action == "delete":
        adapter_ops.delete(models, args.names[0])
        out({"deleted": args.names[0]}, f"deleted {args.names[0]}")
    elif args.action == "export":
        target = Path(args.output or f"{args.names[0]}.zip")
        target.write_bytes(adapter_ops.export_zip(models, args.names[0]))
        out({"zip": str(target)}, f"exported to {target}")
    elif args.action == "import":
        registry = Registry.load(settings.registry_path, models)
        info = adapter_ops.import_zip(models, Path(args.names[0]).read_bytes(), args.name,
                                      base_available=registry.available)
        out({"imported": info.name}, f"imported as {info.name}")
    elif args.action == "merge":
        report = adapter_ops.merge(models, args.names[0])
        out(report, f"merged into {report['folder']} (largest logit difference "
                    f"{report['max_logit_difference']:.2g})")
    else:  # average
        weights = [float(w) for w in args.weights.split(",")] if args.weights else \
            [1.0] * len(args.names)
        if args.combination == "average":
            target = adapter_ops.average(models, args.names, weights, args.name or "")
        else:
            target = adapter_ops.combine(models, args.names, weights, args.name or "",
                                         args.combination)
        out({"adapter": target.name, "parents": args.names, "weights": weights},
            f"saved {target.name}")
    return 0


def cmd_federated(args: argparse.Namespace) -> int:
    from core.federated import FederatedConfig, run

    settings = load_settings()
    config = FederatedConfig(name=args.name, data=args.data, text_col=args.text_col,
                             label_col=args.label_col, base=args.base or settings.lora_base_model,
                             clients=args.clients, rounds=args.rounds, split=args.split,
                             local_steps=args.local_steps, seed=args.seed)
    report = run(config, settings.models_dir, compare_centralised=args.centralised)
    if args.json:
        print(json.dumps(report))
        return 0
    for row in report["rounds"]:
        clients = ", ".join(f"client {c['client']} loss {c['loss']:.3f}" for c in row["clients"])
        print(f"round {row['round']}: global loss {row['loss']:.3f}, accuracy "
              f"{row['accuracy']:.0%}" + (f" ({clients})" if clients else ""))
    for row in report.get("centralised", []):
        print(f"centralised round {row['round']}: loss {row['loss']:.3f}, accuracy "
              f"{row['accuracy']:.0%}")
    print(f"global adapter saved to {report['adapter']}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from core.api import serve

    serve(load_settings(), args.host, args.port)
    return 0


def _print_progress(row: dict) -> None:
    """One line per logged step: the run's train.log, which the Train page shows."""
    parts = [f"step {row['step']}", f"epoch {row['epoch']:.2f}"]
    parts += [f"{k.replace('_', ' ')} {row[k]:.4g}" for k in
              ("loss", "eval_loss", "eval_accuracy", "tokens_per_s") if k in row]
    if "eta_s" in row:
        parts.append(f"eta {row['eta_s']:.0f}s")
    print(" · ".join(parts), flush=True)


def cmd_runs(args: argparse.Namespace) -> int:
    from core.training import jobs
    from core.training.config import TrainConfig

    settings = load_settings()
    if args.action == "list":
        for run in jobs.list_runs(settings):
            row = {"name": run.name, "state": run.status.get("state", "created"),
                   "step": run.status.get("step"), "max_steps": run.status.get("max_steps"),
                   "base": run.config.get("base")}
            print(json.dumps(row) if args.json else
                  f"{row['name']}: {row['state']} step {row['step']}/{row['max_steps']} "
                  f"({row['base']})")
        return 0
    if not args.name:
        raise ValueError(f"runs {args.action} needs a run NAME")
    folder = jobs.run_dir(settings, args.name)
    if not folder.is_dir():
        raise ValueError(f"no run named {args.name!r}")
    if args.action == "show":
        metrics = jobs.read_metrics(folder)
        print(json.dumps({"name": args.name, "status": jobs.read_status(folder),
                          "metrics": metrics if args.json else metrics[-5:]},
                         indent=None if args.json else 2))
    elif args.action == "stop":
        jobs.request_stop(settings, args.name)
        print(f"asked {args.name} to stop after its current step")
    else:
        proc = jobs.start(settings, TrainConfig.load(folder / "config.yaml"), resume=True)
        print(f"resuming {args.name} (process {proc.pid}); follow it with "
              f"`python -m core runs show {args.name}`")
    return 0


def _add_retrieval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question")
    parser.add_argument("--collection", required=True)
    parser.add_argument("-k", type=int, default=5, help="how many chunks (default 5)")
    parser.add_argument("--method", choices=("dense", "bm25", "hybrid"), default="hybrid")
    parser.add_argument("--mmr", action="store_true", help="diversify with MMR")
    parser.add_argument("--min-score", type=float, default=0.0)
    parser.add_argument("--json", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="RAG & LoRA Studio from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="list and prepare the offline models")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = msub.add_parser("list", help="each model with its role and status")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.add_argument("--role", choices=("embedding", "chat", "lora-base"))
    ls.set_defaults(func=cmd_models_list)
    prep = msub.add_parser("prepare", help="assemble, verify and convert (no-op when done)")
    prep.add_argument("names", nargs="*", help="only these models (default: all)")
    prep.set_defaults(func=cmd_models_prepare)

    ing = sub.add_parser("ingest", help="extract, chunk, embed and store documents")
    ing.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (walked)")
    ing.add_argument("--collection", required=True)
    ing.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    ing.add_argument("--chunk-overlap", type=int, default=DEFAULT_CHUNK_OVERLAP)
    ing.add_argument("--ocr", action="store_true",
                     help="read pages without a text layer with tesseract (slow)")
    ing.add_argument("--json", action="store_true", help="one JSON object per file, then a summary")
    ing.set_defaults(func=cmd_ingest)

    col = sub.add_parser("collections", help="list, show or delete collections")
    col.add_argument("action", choices=("list", "show", "delete"))
    col.add_argument("name", nargs="?")
    col.add_argument("--json", action="store_true")
    col.set_defaults(func=cmd_collections)

    find = sub.add_parser("search", help="the chunks of a collection that match a question")
    _add_retrieval_arguments(find)
    find.set_defaults(func=cmd_search)

    ask = sub.add_parser("ask", help="answer a question from a collection, with sources")
    _add_retrieval_arguments(ask)
    ask.add_argument("--engine", choices=("local", "openai"), help="default: from settings")
    ask.add_argument("--model", help="chat model (registry name or HF folder; endpoint model)")
    ask.add_argument("--max-tokens", type=int, default=256)
    ask.set_defaults(func=cmd_ask)

    tr = sub.add_parser("train", help="fine-tune a LoRA adapter for classification")
    tr.add_argument("--config", help="a RUN.yaml written by the wizard (or by hand)")
    tr.add_argument("--data", help="CSV or JSONL with the labelled examples")
    tr.add_argument("--text-col", default="text")
    tr.add_argument("--label-col", default="label")
    tr.add_argument("--base", help="base model (default: the settings' LoRA base)")
    tr.add_argument("--preset", choices=("quick", "balanced", "thorough"), default="quick")
    tr.add_argument("--name", help="name of the run and the adapter")
    tr.add_argument("--max-steps", type=int, default=-1)
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_train)

    est = sub.add_parser("estimate", help="a run's size, duration and peak memory, measured "
                                          "from a few real steps")
    est.add_argument("--config", required=True, help="a RUN.yaml")
    est.add_argument("--json", action="store_true")
    est.set_defaults(func=cmd_estimate)

    cls = sub.add_parser("classify", help="classify documents with an adapter")
    cls.add_argument("--adapter", required=True, help="adapter name (see the Train page)")
    cls.add_argument("files", nargs="+", metavar="FILE", help="files or folders (walked)")
    cls.add_argument("--mode", choices=("score", "generate"), default="score",
                     help="score every label (default) or generate and parse the answer")
    cls.add_argument("--json", action="store_true", help="one JSON object per file")
    cls.set_defaults(func=cmd_classify)

    ad = sub.add_parser("adapters", help="the adapter library: list, show, rename, delete, "
                                         "export, import, merge, average")
    ad.add_argument("action", choices=("list", "show", "rename", "delete", "export", "import",
                                       "merge", "average"))
    ad.add_argument("names", nargs="*", metavar="NAME",
                    help="adapter name(s); import: the ZIP file; rename: OLD NEW")
    ad.add_argument("--name", help="import: save under this name; average: the new adapter")
    ad.add_argument("--weights", help="average: comma-separated, one per adapter (default equal)")
    ad.add_argument("--combination", default="average",
                    choices=("average", "cat", "svd", "ties", "dare_linear"),
                    help="average: weighted average of the tensors (default) or a PEFT combination")
    ad.add_argument("--output", help="export: the ZIP to write (default NAME.zip)")
    ad.add_argument("--json", action="store_true")
    ad.set_defaults(func=cmd_adapters)

    fed = sub.add_parser("federated", help="federated LoRA with Flower's simulation engine")
    fed.add_argument("--data", required=True, help="CSV or JSONL with the labelled examples")
    fed.add_argument("--text-col", default="text")
    fed.add_argument("--label-col", default="label")
    fed.add_argument("--base", help="base model (default: the settings' LoRA base)")
    fed.add_argument("--clients", type=int, default=3)
    fed.add_argument("--rounds", type=int, default=3)
    fed.add_argument("--split", choices=("iid", "by-label"), default="iid",
                     help="how the training data is dealt to the clients")
    fed.add_argument("--local-steps", type=int, default=4, help="steps per client per round")
    fed.add_argument("--seed", type=int, default=42)
    fed.add_argument("--centralised", action="store_true",
                     help="also train on the pooled data with the same budget, to compare")
    fed.add_argument("--name", required=True, help="name of the global adapter")
    fed.add_argument("--json", action="store_true")
    fed.set_defaults(func=cmd_federated)

    api = sub.add_parser("api", help="serve the classification REST API (docs at /docs)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(func=cmd_api)

    runs = sub.add_parser("runs", help="training runs: list, show, stop, resume")
    runs.add_argument("action", choices=("list", "show", "stop", "resume"))
    runs.add_argument("name", nargs="?")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "collections" and args.action in ("show", "delete") and not args.name:
        parser.error(f"collections {args.action} needs a collection NAME")
    try:
        return args.func(args)
    except (RegistryError, StoreError, ValueError, RunBusy, AdapterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

"""`classify` and `api`: an adapter's labels for documents, here or over REST, or stored on a
whole collection (`classify --collection`)."""

from __future__ import annotations

import argparse
import json

from core.cli.common import walk
from core.errors import InputError
from core.settings import load_settings


def cmd_classify(args: argparse.Namespace) -> int:
    import time

    from core.lora.adapters import load_classifier
    from core.rag.extract import ExtractionError, extract
    from core.uploads import UploadError, check_size

    if bool(args.files) == bool(args.collection):
        raise InputError("give either FILEs or --collection")
    if args.collection:
        return _classify_collection(args)
    settings = load_settings()
    classifier = load_classifier(settings.models_dir, adapter=args.adapter)
    failed = 0
    for path in walk(args.files):
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
            if result.likeness:
                row["likeness"] = result.likeness.as_dict()
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
            if result.likeness and result.unlike:
                print(f"  {result.likeness.sentence()}", flush=True)
    return 1 if failed else 0


def _classify_collection(args: argparse.Namespace) -> int:
    import sys

    from core.lora.collection_labels import Pages, classify_collection

    if args.mode != "score":
        raise InputError("a collection is classified in score mode: its labels carry "
                         "probabilities")
    pages = Pages.parse(args.pages) if args.pages else Pages()

    def progress(done: int, total: int, stage: str) -> None:
        if not args.json:
            print(f"\r{stage}: {done}/{total}", end="", file=sys.stderr, flush=True)

    rows = classify_collection(load_settings(), args.collection, args.adapter, pages, progress)
    if not args.json:
        print(file=sys.stderr)
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            where = f" p.{row['page']}" if row["page"] is not None else ""
            guess = ", unlike the training documents: a guess" if row["familiar"] is False else ""
            print(f"{row['file']}{where}: {row['label']} ({row['p']:.0%}{guess})")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from core.api import serve

    serve(load_settings(), args.host, args.port)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    cls = sub.add_parser("classify", help="classify documents with an adapter")
    cls.add_argument("--adapter", required=True, help="adapter name (see the Train page)")
    cls.add_argument("files", nargs="*", metavar="FILE", help="files or folders (walked)")
    cls.add_argument("--collection", help="instead of files: label every document of this "
                                          "collection, stored on its chunks (see search --label)")
    cls.add_argument("--pages", metavar="first:N|per-page",
                     help="with --collection: read each document's first N pages (default: "
                          "core.lora.collection_labels.DEFAULT_FIRST_PAGES), or label each "
                          "page on its own")
    cls.add_argument("--mode", choices=("score", "generate"), default="score",
                     help="score every label (default) or generate and parse the answer")
    cls.add_argument("--json", action="store_true", help="one JSON object per file (or "
                                                         "document, or page)")
    cls.set_defaults(func=cmd_classify)


def register_api(sub: argparse._SubParsersAction) -> None:
    api = sub.add_parser("api", help="serve the classification REST API (docs at /docs)")
    api.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: %(default)s, this machine only; "
                          "another address needs STUDIO_API_KEYS)")
    api.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    api.set_defaults(func=cmd_api)

"""`classify` and `api`: an adapter's labels for documents, here or over REST."""

from __future__ import annotations

import argparse
import json

from core.cli.common import walk
from core.settings import load_settings


def cmd_classify(args: argparse.Namespace) -> int:
    import time

    from core.lora.adapters import load_classifier
    from core.rag.extract import ExtractionError, extract
    from core.uploads import UploadError, check_size

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


def cmd_api(args: argparse.Namespace) -> int:
    from core.api import serve

    serve(load_settings(), args.host, args.port)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    cls = sub.add_parser("classify", help="classify documents with an adapter")
    cls.add_argument("--adapter", required=True, help="adapter name (see the Train page)")
    cls.add_argument("files", nargs="+", metavar="FILE", help="files or folders (walked)")
    cls.add_argument("--mode", choices=("score", "generate"), default="score",
                     help="score every label (default) or generate and parse the answer")
    cls.add_argument("--json", action="store_true", help="one JSON object per file")
    cls.set_defaults(func=cmd_classify)


def register_api(sub: argparse._SubParsersAction) -> None:
    api = sub.add_parser("api", help="serve the classification REST API (docs at /docs)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(func=cmd_api)

"""`python -m core …`: the command-line face of the Studio. Each subcommand is a thin wrapper
around the same core functions the pages call; each area's module adds its subcommands with
their handlers."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

from core.cli import models
from core.cli.lora import adapters, classify, training
from core.cli.rag import chat, conversations, documents, evaluate
from core.errors import StudioError, service_unavailable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="RAG & LoRA Studio from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # `--help` lists the commands in the order they are added here, which is the established
    # order: api and runs come last, apart from the rest of their areas.
    models.register(sub)
    documents.register(sub)
    chat.register(sub)
    conversations.register(sub)
    evaluate.register(sub)
    training.register(sub)
    classify.register(sub)
    adapters.register(sub)
    classify.register_api(sub)
    training.register_runs(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Here rather than in cmd_collections: parser.error shows the top-level usage and exits 2.
    if args.command == "collections" and args.action in ("show", "delete") and not args.name:
        parser.error(f"collections {args.action} needs a collection NAME")
    try:
        return args.func(args)
    except (StudioError, ValueError) as exc:  # ValueError: a library refusing a value we passed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: a short line here, the traceback in the log
        if (down := service_unavailable(exc)) is not None:
            print(f"error: {down}", file=sys.stderr)
            return 2
        log = _log_crash(args.command)
        print(f"error: unexpected {type(exc).__name__}: {str(exc)[:200]} "
              f"(details in {log})", file=sys.stderr)
        return 1


def _log_crash(command: str) -> Path:
    """Append the current traceback to <data>/logs/cli.log and return its path."""
    from core.settings import load_settings

    try:
        folder = load_settings().data_dir / "logs"
    except Exception:  # broken settings must not hide the original error
        folder = Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "cli.log"
    with log.open("a") as fh:
        fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n")
        traceback.print_exc(file=fh)
    return log

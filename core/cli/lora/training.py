"""`train`, `estimate` and `runs`: LoRA training runs, in the foreground or managed."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

from core.cli.common import add_field_flags, field_overrides
from core.errors import InputError
from core.files import DiskFull, disk_full
from core.lora.config import PRESETS, TrainConfig, from_preset
from core.lora.evaluate import BASELINES
from core.settings import load_settings


def _print_progress(row: dict) -> None:
    """One line per logged step: the run's train.log, which the Train page shows."""
    parts = [f"step {row['step']}", f"epoch {row['epoch']:.2f}"]
    parts += [f"{k.replace('_', ' ')} {row[k]:.4g}" for k in
              ("loss", "eval_loss", "eval_accuracy", "tokens_per_s") if k in row]
    if "eta_s" in row:
        parts.append(f"eta {row['eta_s']:.0f}s")
    print(" · ".join(parts), flush=True)


def _leave_process_group() -> None:
    """Under `accelerate launch`: a rank that exits with its gloo group still up sometimes
    aborted at exit ("terminate called without an active exception"), failing the run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def cmd_train(args: argparse.Namespace) -> int:
    from core.lora import runs
    from core.lora.trainer import train

    settings = load_settings()
    given = field_overrides(args, TrainConfig)
    if args.config:
        config = replace(TrainConfig.load(Path(args.config)), **given)
    else:
        missing = [f"--{n}" for n in ("data", "name") if n not in given]
        if missing:
            raise InputError(f"train needs --config RUN.yaml, or {' and '.join(missing)}")
        config = from_preset(args.preset, **{"base": settings.lora_base_model, **given})
    run = runs.run_dir(settings, config.name)
    run.path.mkdir(parents=True, exist_ok=True)
    # Under `accelerate launch` every process runs this; the first one holds the lock, prints
    # and publishes the adapter.
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        runs.acquire(settings, config.name)
    try:
        adapter = train(config, run.path, settings.models_dir, resume=args.resume,
                        on_metrics=_print_progress if main_process else None)
    except runs.Cancelled as exc:
        if main_process:
            run.update_status(state=runs.CANCELLED, stop_reason=str(exc))
            print(f"{exc}; nothing was trained", flush=True)
        _leave_process_group()
        return 0
    except Exception as exc:  # the page and `runs show` must see why; checkpoints stay
        full = disk_full(exc, run.path)
        if main_process:
            run.drop_incomplete()
            try:
                run.update_status(state="failed", error=str(full or exc))
            except DiskFull:  # still no room even for the status: the message says it all
                pass
        if full in (None, exc):
            raise
        raise full from exc
    finally:
        if main_process:
            runs.release(settings)
    _leave_process_group()
    if not main_process:
        return 0
    evaluation = run.evaluation() or {}
    result = {"adapter": str(adapter), "run": str(run.path),
              "test": {which: {k: evaluation[which][k] for k in ("accuracy", "macro_f1")}
                       for which in ("adapter", "zero_shot", *BASELINES) if which in evaluation},
              "test_size": evaluation["test_size"], "learning_curve": evaluation["learning_curve"],
              "stopped": run.status().get("stop_reason")}
    print(json.dumps(result) if args.json else
          f"adapter saved to {adapter} ({result['stopped']})\ntest accuracy ({result['test_size']} examples): " +
          ", ".join(f"{k.replace('_', '-')} {v['accuracy']:.0%}" for k, v in result["test"].items()))
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from core.lora.estimate import measure, model_size

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


def cmd_runs(args: argparse.Namespace) -> int:
    from core.lora import runs

    settings = load_settings()
    if args.action == "list":
        for run in runs.list_runs(settings):
            row = {"name": run.name, "state": run.status.get("state", "created"),
                   "step": run.status.get("step"), "max_steps": run.status.get("max_steps"),
                   "base": run.config.get("base"), "error": run.status.get("error")}
            print(json.dumps(row) if args.json else
                  f"{row['name']}: {row['state']} step {row['step']}/{row['max_steps']} "
                  f"({row['base']})" + (f": {row['error']}" if row["error"] else ""))
        return 0
    if not args.name:
        raise InputError(f"runs {args.action} needs a run NAME")
    folder = runs.run_dir(settings, args.name)
    if not folder.exists():
        raise InputError(f"no run named {args.name!r}")
    if args.action == "show":
        metrics = folder.metrics()
        print(json.dumps({"name": args.name, "status": folder.status(),
                          "metrics": metrics if args.json else metrics[-5:]},
                         indent=None if args.json else 2))
    elif args.action == "stop":
        folder.request_stop()
        print(f"asked {args.name} to stop after its current step")
    else:
        proc = runs.start(settings, TrainConfig.load(folder.config_path), resume=True)
        print(f"resuming {args.name} (process {proc.pid}); follow it with "
              f"`python -m core runs show {args.name}`")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="fine-tune a LoRA adapter for classification")
    tr.add_argument("--config", help="a RUN.yaml written by the wizard (or by hand)")
    tr.add_argument("--preset", choices=list(PRESETS), default="quick",
                    help="starting values; any setting below overrides its preset value")
    add_field_flags(tr, TrainConfig)
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=cmd_train)

    est = sub.add_parser("estimate", help="a run's size, duration and peak memory, measured "
                                          "from a few real steps")
    est.add_argument("--config", required=True, help="a RUN.yaml")
    est.add_argument("--json", action="store_true")
    est.set_defaults(func=cmd_estimate)


def register_runs(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("runs", help="training runs: list, show, stop, resume")
    parser.add_argument("action", choices=("list", "show", "stop", "resume"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=cmd_runs)

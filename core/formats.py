"""Numbers as people read them: a Unix time as a local date and time, a share as a percentage.
The pages show metadata that is stored raw (seconds since 1970, fractions of one)."""

from __future__ import annotations

from datetime import datetime

ACCURACY_KEYS = ("accuracy", "test accuracy", "test_accuracy")


def local_time(ts: float | None) -> str:
    """`ts` in this machine's time zone, to the minute; empty when unknown (0 or None)."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""


def percent(share: float | None) -> str:
    return f"{share:.0%}" if share is not None else "—"


def rate(per_second: float, unit: str) -> str:
    """A decode or processing speed: a slow one (a loaded machine can give under one token a
    second) keeps a decimal, so it never reads "0 tokens/s"."""
    return f"{per_second:.1f} {unit}/s" if per_second < 10 else f"{per_second:.0f} {unit}/s"


def readable(meta: dict) -> dict:
    """Adapter metadata for display: times (`created`, `imported`) as local date-times and
    accuracies as percentages, nested dictionaries included; all else as it was."""
    out = {}
    for key, value in meta.items():
        if isinstance(value, dict):
            value = readable(value)
        elif key in ("created", "imported") and isinstance(value, (int, float)):
            value = local_time(value)
        elif key in ACCURACY_KEYS and isinstance(value, float):
            value = percent(value)
        out[key] = value
    return out

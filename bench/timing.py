"""Latency summaries shared by the benchmarks, so their p50/p95 mean the same thing."""

from __future__ import annotations

import statistics


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"p50_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))]}

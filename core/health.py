"""What this machine and its services can do right now, without importing torch: the home page's
status panel and `python -m core status` read it."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from functools import lru_cache

import psutil

from core.registry import Registry, RegistryError
from core.settings import Settings

PROBE_TIMEOUT_S = 2.0


@dataclass
class Check:
    name: str
    ok: bool
    summary: str
    detail: str = ""


def _http_ok(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as resp:
            return 200 <= resp.status < 300, f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, str(getattr(exc, "reason", exc))


def chroma_check(settings: Settings) -> Check:
    if settings.chroma_host:
        url = f"http://{settings.chroma_host}:{settings.chroma_port}/api/v2/heartbeat"
        ok, why = _http_ok(url)
        where = f"server {settings.chroma_host}:{settings.chroma_port}"
        return Check("Chroma", ok, where if ok else f"{where} unreachable", why)
    if importlib.util.find_spec("chromadb") is None:
        return Check("Chroma", False, "chromadb not installed", "pip install -r requirements.txt")
    folder = settings.chroma_dir
    parent = folder if folder.exists() else folder.parent
    writable = os.access(parent, os.W_OK) if parent.exists() else os.access(
        parent.parent, os.W_OK)
    return Check("Chroma", writable, "embedded" if writable else "folder not writable",
                 str(folder))


def tika_check(settings: Settings) -> Check:
    if settings.tika_server_url:
        ok, why = _http_ok(settings.tika_server_url.rstrip("/") + "/version")
        return Check("Tika", ok, "server" if ok else "server unreachable",
                     f"{settings.tika_server_url} ({why})")
    ok = importlib.util.find_spec("iscc_tika") is not None
    return Check("Tika", ok, "native (iscc-tika)" if ok else "iscc-tika not installed",
                 "Apache Tika compiled to native code, no JVM")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Read once: it sits on the path of every embedding and model load."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_is_fast() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-bf16 or AMX): then bf16 runs ~2.6x
    float32; elsewhere it is emulated and slower than float32."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def compute_check() -> Check:
    bf16 = bf16_is_fast()
    cores = psutil.cpu_count(logical=True) or 1
    cpu = f"{cores} CPU cores" + (", bf16" if bf16 else "")
    gpus = gpu_names()
    summary = f"{cpu}; GPU: {', '.join(gpus)}" if gpus else f"{cpu}; no GPU"
    return Check("Compute", True, summary, platform.processor() or platform.machine())


def gpu_names() -> list[str]:
    """NVIDIA GPUs as the driver reports them; asking torch would import it."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def memory_check() -> Check:
    mem = psutil.virtual_memory()
    avail, total = mem.available / 2**30, mem.total / 2**30
    return Check("Memory", avail >= 2, f"{avail:.1f} of {total:.1f} GiB free")


def model_checks(settings: Settings) -> list[Check]:
    try:
        registry = Registry.load(settings.registry_path, settings.models_dir)
    except RegistryError as exc:
        return [Check("Models", False, "registry unreadable", str(exc))]
    checks = []
    for state in registry.states():
        roles = ", ".join(state.roles)
        label = f"{state.name} ({roles})"
        chosen = state.name in (settings.chat_model, settings.embedding_model,
                                settings.lora_base_model)
        if state.not_installed and not chosen:
            checks.append(Check(label, True, "not installed (optional)", state.detail))
        else:
            checks.append(Check(label, state.status == "ready", state.status, state.detail))
    return checks


def system_report(settings: Settings) -> dict[str, list[Check]]:
    return {
        "models": model_checks(settings),
        "services": [chroma_check(settings), tika_check(settings)],
        "machine": [compute_check(), memory_check()],
    }


def report_json(report: dict[str, list[Check]]) -> str:
    return json.dumps({k: [asdict(c) for c in v] for k, v in report.items()}, indent=2)

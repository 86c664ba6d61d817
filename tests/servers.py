"""Real servers the tests start on 127.0.0.1 and always stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(command: list[str], ready_url: str, log_path: Path, timeout: float = 120,
            env: dict[str, str] | None = None, cwd: Path | None = None):
    """Start `command`, wait until `ready_url` answers, stop it afterwards."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})},
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(ready_url, timeout=2)
                    break
                except OSError as exc:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{command[0]} did not start; see {log_path}") from exc
                    time.sleep(0.3)
            yield proc
        finally:
            stop(proc)


def llama_server(port: int, api_key: str, log_path: Path):
    """llama.cpp's own OpenAI-compatible server (`python -m llama_cpp.server`) serving the light
    packaged chat model as `smollm`, on 127.0.0.1."""
    from core.registry import Registry
    from core.settings import PROJECT_ROOT

    registry = Registry.load(PROJECT_ROOT / "models" / "registry.toml")
    gguf = registry.gguf_path(registry.get("smollm2-135m-instruct"))
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
               "127.0.0.1", "--port", str(port), "--api_key", api_key, "--model_alias", "smollm",
               "--n_ctx", "4096"]
    return running(command, f"http://127.0.0.1:{port}/docs", log_path)


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Terminate `proc` and every process it started, killing what is left after `timeout`.
    Flower's SuperLink and SuperNodes start helpers (SuperExec, the apps' processes), some in
    sessions of their own, so a process group would miss them."""
    import psutil

    def alive(helper: psutil.Process) -> bool:
        # Orphans that exited stay zombies where PID 1 does not reap them: they are gone.
        try:
            return helper.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def signal(helpers, action: str) -> None:
        for helper in helpers:
            try:
                getattr(helper, action)()
            except psutil.NoSuchProcess:
                pass

    try:
        helpers = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        helpers = []
    proc.terminate()
    signal(helpers, "terminate")
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + timeout
    while any(map(alive, helpers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    signal(filter(alive, helpers), "kill")

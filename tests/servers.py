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

# Settings that point the Studio at services and models outside: a server started for a test or a
# benchmark runs on its own data, not on what this machine's environment names.
OUTSIDE = ("CHROMA_HOST", "TIKA_SERVER_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY",
           "OPENAI_MODEL", "STUDIO_EMBEDDING_MODEL", "STUDIO_MODELS_DIR")


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
    gguf = registry.weights_path(registry.get("smollm2-135m-instruct"))
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


@contextmanager
def ray_cluster(log_dir: Path, cpus: tuple[int, ...] = (1, 1), cwd: Path | None = None):
    """A Ray head and a worker node per further entry of `cpus` (each node's CPUs), on
    127.0.0.1, importing the Studio from `cwd`; yields the head's address. Every port is chosen
    here and the session lives in its own temp dir, so a Ray that others run on this machine
    is neither joined nor disturbed (its fixed ports, client server and agent, would clash)."""
    import shutil
    import sys
    import tempfile

    ray = str(Path(sys.executable).with_name("ray"))
    cwd = cwd or Path(__file__).resolve().parents[1]
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's sockets live under it
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"PYTHONPATH": str(cwd), "RAY_USAGE_STATS_ENABLED": "0"}
    nodes: list[subprocess.Popen] = []

    def start(name: str, num_cpus: int, *args: str) -> None:
        with open(log_dir / f"{name}.log", "w") as log:
            nodes.append(subprocess.Popen(
                [ray, "start", "--block", f"--num-cpus={num_cpus}", "--node-ip-address=127.0.0.1",
                 f"--dashboard-agent-listen-port={free_port()}", *args],
                cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while True:
            status = subprocess.run([ray, "status", f"--address={address}"],
                                    capture_output=True, text=True)
            if status.returncode == 0 and \
                    status.stdout.split("Pending:")[0].count("node_") >= len(nodes):
                return
            if nodes[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray node {name} did not start; see {log_dir}")
            time.sleep(1)

    try:
        start("head", cpus[0], "--head", f"--port={port}", "--include-dashboard=false",
              f"--ray-client-server-port={free_port()}", f"--temp-dir={temp}")
        for i, num_cpus in enumerate(cpus[1:], 1):
            start(f"worker-{i}", num_cpus, f"--address={address}")
        yield address
    finally:
        for proc in reversed(nodes):
            stop(proc)
        shutil.rmtree(temp, ignore_errors=True)

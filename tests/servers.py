"""Real servers the tests start on 127.0.0.1 and always stop."""

from __future__ import annotations

import os
import socket
import subprocess
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
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{command[0]} did not start; see {log_path}")
                    time.sleep(0.3)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

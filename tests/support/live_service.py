"""`cardd serve` as a real process on loopback, for the service and web-page tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveService:
    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text()


def start(
    checkpoint: Path,
    log: Path,
    *args: str,
    env: dict | None = None,
    host="127.0.0.1",
    config: str | None = "tiny_DCN_plus",
):
    """Start `cardd serve` with the tiny model (`config` None: the file's own config)
    and wait until /health answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "cardd", "serve", *(["--config", config] if config else []),
        "--checkpoint", str(checkpoint), "--device", "cpu", "--host", host, "--port", str(port),
        *args,
    ]  # fmt: skip
    handle = open(log, "w")
    process = subprocess.Popen(
        command,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cardd serve exited {process.returncode}: {log.read_text()}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return LiveService(url, process, log)
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"cardd serve did not answer: {log.read_text()}")


def stop(service: LiveService, timeout: float = 20) -> int:
    """SIGTERM, as a process manager would; returns the exit code."""
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait()
    return service.process.returncode


@contextlib.contextmanager
def running(checkpoint: Path, log: Path, *args: str, **kwargs) -> Iterator[LiveService]:
    service = start(checkpoint, log, *args, **kwargs)
    try:
        yield service
    finally:
        stop(service)

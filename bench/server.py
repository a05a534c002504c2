"""The API in its own uvicorn process(es), as `make run` serves it (bench.http_app: the app
plus one empty POST), on a free port, for the HTTP benches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench import procs
from infra.launcher import UVICORN_OPTIONS

SRC = Path(__file__).resolve().parents[1] / "src"
READY_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(url: str, data_dir: Path) -> dict[str, str]:
    """What the launcher hands its children, minus Redis (no worker runs in the bench)."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DATABASE_URL=url,
        DATA_DIR=str(data_dir),
        ENVIRONMENT="test",
        PYTHONPATH=os.pathsep.join([str(SRC), str(SRC.parent)]),
    )
    return env


class ApiServer:
    def __init__(self, url: str, data_dir: Path, workers: int = 1) -> None:
        self.url, self.data_dir, self.workers = url, data_dir, workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> ApiServer:
        command = [sys.executable, "-m", "uvicorn", "bench.http_app:create_app", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), *UVICORN_OPTIONS]
        command += ["--workers", str(self.workers), "--log-level", "warning"]
        self.proc = subprocess.Popen(command, env=child_env(self.url, self.data_dir))
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        answered = 0
        with httpx.Client(base_url=self.base, timeout=2, trust_env=False) as client:
            # With several workers, ask until enough answers that each has likely started.
            while answered < 4 * self.workers:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"uvicorn exited with {self.proc.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.base}/healthz did not answer")
                try:
                    answered += client.get("/healthz").status_code == 200
                except httpx.HTTPError:
                    time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cpu_seconds(self) -> float:
        return procs.cpu_seconds(procs.tree(self.pid))

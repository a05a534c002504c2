"""`make run` end to end: on a fresh data dir the launcher starts PostgreSQL, Redis, the API,
the worker and the projection daemon; SIGTERM stops all of them and it exits 0."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from infra.embedded import MAX_WAL_SIZE

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


def _api_is_there() -> bool:
    try:
        return importlib.util.find_spec("api.main") is not None
    except ImportError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[str] | None:
    """The fields after the command name: [state, ppid, ..., starttime at 19, ...]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(root: int) -> dict[int, str]:
    """Every process under `root`, as pid -> start time (to tell a reused pid apart)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
            starts[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for pid in parents.get(todo.pop(), []):
            found[pid] = starts[pid]
            todo.append(pid)
    return found


def _alive(pid: int, start: str | None = None) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z" and (start is None or fields[19] == start)


class Output:
    """Drains the launcher's stdout and stderr (its children write there too)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def find(self, pattern: str) -> str | None:
        for line in list(self.lines):
            if match := re.search(pattern, line):
                return match.group(1)
        return None

    def tail(self) -> str:
        return "".join(self.lines[-60:])


def _server_pids(data_dir: Path) -> list[int]:
    """The embedded postmaster and redis-server: daemons, not children, but ours to stop."""
    pids = [int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])]
    registry = json.loads((data_dir / "redis" / "redis.db.settings").read_text())
    pids.append(int(Path(registry["pidfile"]).read_text()))
    return pids


def _wait_for_heartbeat(redis_url: str, timeout: float) -> float | None:
    from dramatiq import Message

    from workers.broker import HEARTBEAT_KEY, build_broker, close_broker, last_heartbeat

    broker = build_broker(redis_url)
    try:
        broker.client.delete(HEARTBEAT_KEY)
        broker.enqueue(
            Message(queue_name="default", actor_name="heartbeat", args=(), kwargs={}, options={})
        )
        deadline = time.monotonic() + timeout
        while (beat := last_heartbeat(broker.client)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return beat
    finally:
        close_broker(broker)


def test_launcher_starts_everything_and_stops_cleanly_on_sigterm() -> None:
    if not _api_is_there():
        pytest.skip("api.main is not in this tree yet: the launcher has no API to start")
    data_dir = Path(tempfile.mkdtemp(prefix="ledger-launch-"))  # short: sockets live there
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    paths = [str(ROOT / "src"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        DATA_DIR=str(data_dir),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        PYTHONPATH=os.pathsep.join(paths),
    )
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.launcher"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Output(proc)
    servers: list[int] = []
    children: dict[int, str] = {}
    try:
        docs = None
        while docs is None and proc.poll() is None and time.monotonic() - began < START_TIMEOUT_S:
            time.sleep(0.1)
            docs = out.find(r"API docs\s+(http://\S+/docs)")
        assert docs, f"no /docs URL printed (exit code {proc.poll()}):\n{out.tail()}"
        assert docs == f"http://127.0.0.1:{port}/docs"
        children = _descendants(proc.pid)
        assert len(children) >= 2, f"expected at least the API and the worker: {children}"
        servers = _server_pids(data_dir)

        with httpx.Client(timeout=5, trust_env=False) as http:
            assert http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            assert http.get(docs).status_code == 200
        redis_url = out.find(r"REDIS_URL\s+(\S+)")
        database_url = out.find(r"DATABASE_URL\s+(\S+)")
        assert redis_url and database_url and out.find(r"demo member\s+(\S+)")
        with psycopg.connect(database_url) as conn:  # sized for a rebuild's WAL
            assert conn.execute("SHOW max_wal_size").fetchone()[0] == MAX_WAL_SIZE  # type: ignore[index]
        assert _wait_for_heartbeat(redis_url, timeout=15), f"no worker ran heartbeat:\n{out.tail()}"
        children.update(_descendants(proc.pid))  # the worker's own process is surely up now

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, out.tail()
        left = [pid for pid, start in children.items() if _alive(pid, start)]
        assert not left, f"children left running: {left}"
        assert not [pid for pid in servers if _alive(pid)], "embedded servers left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid, start in children.items():
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)
        for pid in servers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)

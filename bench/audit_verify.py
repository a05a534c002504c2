"""`ledger audit verify` (and `ledger audit replay`) on BENCH_AUDIT_EVENTS events (default
1,000,000): the goal is the whole hash chain of a million events verified in 30 s or less.

The log comes from bench/rebuild.py's generator (the project's services and recorder,
batched); it is sealed like the daemon seals it, then verify is timed alone, and the replay
audit (balances from the raw log against the read models) is timed after a rebuild of the
read models.

`run(owner_url)` works on the database it is given, adding events only if it holds fewer
than asked for, so `make bench` can hand it the database the rebuild bench filled.
`python -m bench.audit_verify` keeps its own database, `ledger_audit_bench`, on the local
server (or TEST_DATABASE_URL's server) and reuses it on the next run; `--drop` drops it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.sql import SQL, Identifier

EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "1000000"))
GOAL_SECONDS = 30.0
DATABASE = "ledger_audit_bench"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM ledger_events")
        return int(row.fetchone()[0])  # type: ignore[index]


def ensure_events(url: str, events: int) -> int:
    """Top the log up to about `events` events (migrating first); returns the head."""
    from bench.rebuild import generate_parallel
    from infra.migrate import upgrade

    upgrade(url)
    have = _count(url)
    if have < events * 0.99:
        began = time.perf_counter()
        written = generate_parallel(url, events - have, parts=min(2, os.cpu_count() or 1))
        log(f"audit: generated {written:,} events in {time.perf_counter() - began:.1f} s")
    return _count(url)


def seal_all(url: str) -> tuple[int, float]:
    """Seal every unsealed event, as the daemon does; returns (sealed, seconds)."""
    from audit.chain import seal

    began = time.perf_counter()
    total = 0
    with psycopg.connect(url, autocommit=True) as conn:
        while n := seal(conn, limit=100_000):
            total += n
    return total, time.perf_counter() - began


def time_verify(url: str) -> dict[str, Any]:
    from audit.chain import verify

    began = time.perf_counter()
    verdict = verify(url)
    seconds = time.perf_counter() - began
    return {
        "ok": verdict.ok,
        "checked": verdict.checked,
        "unsealed": verdict.unsealed,
        "seconds": round(seconds, 2),
        "events_per_s": round(verdict.checked / seconds, 1) if seconds else 0.0,
    }


def _catch_up_read_models(url: str) -> None:
    """The journal (rebuilt in bulk when it lags) and points lots (its own runner: it is not
    rebuildable in a shadow schema) up to the head, so that the audit compares everything."""
    from infra.bootstrap import build_core
    from infra.settings import Settings
    from projections.distribution import DistributionProjector
    from projections.framework import ProjectionRunner
    from projections.rebuild import rebuild

    core = build_core(Settings(), url, migrate=False, group_commit=False)
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT coalesce((SELECT position FROM read.tracking "
                "WHERE projection = 'journal'), 0)"
            ).fetchone()
        if int(row[0]) < _count(url):  # type: ignore[index]
            rebuild(core, url, ("journal",), progress=False)
        runner = ProjectionRunner(
            core.app, core.read_pool, DistributionProjector(), page_size=20_000, bulk=True
        )
        runner.run_until_caught_up()
    finally:
        core.close()


def time_replay(url: str) -> dict[str, Any]:
    """The replay audit against read models that are up to date."""
    from audit.diff import replay_audit

    began = time.perf_counter()
    _catch_up_read_models(url)
    log(f"audit: read models caught up in {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    report = replay_audit(url)
    seconds = time.perf_counter() - began
    return {
        "agree": report.agree,
        "accounts": report.accounts,
        "differences": len(report.differences),
        "events": report.events,
        "positions": report.replayed_to,
        "seconds": round(seconds, 2),
        "events_per_s": round(report.replayed_to / seconds, 1) if seconds else 0.0,
    }


def run(owner_url: str, events: int = EVENTS, replay: bool = True) -> dict[str, Any]:
    """Fill (if needed), seal and verify; returns the figures (verify events/s first)."""
    head = ensure_events(owner_url, events)
    sealed, seal_seconds = seal_all(owner_url)
    log(f"audit: {head:,} events, sealed {sealed:,} in {seal_seconds:.1f} s")
    verify = time_verify(owner_url)
    log(
        f"  audit.verify: {verify['checked']:,} events in {verify['seconds']:.2f} s = "
        f"{verify['events_per_s']:,.0f} events/s (goal: 1,000,000 in {GOAL_SECONDS:.0f} s)"
    )
    result: dict[str, Any] = {
        "events": head,
        "verify": verify,
        "verify_events_per_s": verify["events_per_s"],
        "seal_seconds": round(seal_seconds, 2),
        "goal_seconds_per_million": GOAL_SECONDS,
    }
    if replay:
        result["replay"] = time_replay(owner_url)
        r = result["replay"]
        log(
            f"  audit.replay: {r['positions']:,} events ({r['events']:,} with entries) in "
            f"{r['seconds']:.2f} s = {r['events_per_s']:,.0f} events/s, "
            f"{r['accounts']:,} accounts, "
            f"{r['differences']} differences"
        )
    return result


def _server() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER


def bench_database(server: str, drop: bool = False) -> str:
    """The reusable bench database on `server` (created if missing, or dropped)."""
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        found = exists.fetchone() is not None
        if drop:
            drop_it = SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop_it.format(Identifier(DATABASE)))
        elif not found:
            conn.execute(SQL("CREATE DATABASE {}").format(Identifier(DATABASE)))
    return make_conninfo(**{**conninfo_to_dict(server), "dbname": DATABASE})


def main(argv: list[str]) -> int:
    server = _server()
    if "--drop" in argv:
        bench_database(server, drop=True)
        log(f"dropped {DATABASE}")
        return 0
    result = run(bench_database(server), replay="--no-replay" not in argv)
    verify = result["verify"]
    print(
        f"audit verify: {verify['checked']:,} events in {verify['seconds']:.2f} s = "
        f"{verify['events_per_s']:,.0f} events/s, ok={verify['ok']}"
    )
    if "replay" in result:
        r = result["replay"]
        print(
            f"audit replay: {r['positions']:,} events in {r['seconds']:.2f} s = "
            f"{r['events_per_s']:,.0f} events/s, {r['accounts']:,} accounts agree={r['agree']}"
        )
    return 0 if verify["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The replay audit: every balance rebuilt from the raw log (audit.replay) against every read
model that holds one, each compared at the log position its projector has reached.

Read models compared:
- `account_balances`: read.account_balances, the running balance of every account (what the
  card, points, commission and station income screens show);
- `journal_lines`: the sum of each account's lines in read.journal_lines (what statements,
  the trial balance and as-of answers add up);
- `points_lots`: read.points_lots, each member's points by lot, against `member:{id}:points`.

One repeatable-read snapshot covers the projectors' positions, the read models and the log,
so a projector moving on during the audit cannot show up as a difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from audit.replay import Balances, replay_log


@dataclass(frozen=True)
class ReadModel:
    name: str
    projection: str  # whose tracking position the read model is at
    sql: str  # (account, asset, balance) rows
    covers: Callable[[str, str], bool]  # which log accounts it should hold


def _points(account: str, asset: str) -> bool:
    return asset == "PTS" and account.startswith("member:") and account.endswith(":points")


READ_MODELS = (
    ReadModel(
        "account_balances",
        "journal",
        "SELECT account, asset, balance FROM read.account_balances",
        lambda account, asset: True,
    ),
    ReadModel(
        "journal_lines",
        "journal",
        "SELECT account, asset, sum(amount)::bigint FROM read.journal_lines GROUP BY 1, 2",
        lambda account, asset: True,
    ),
    ReadModel(
        "points_lots",
        "distribution",
        "SELECT 'member:' || member_id || ':points', 'PTS', points FROM read.points_lots",
        _points,
    ),
)


@dataclass(frozen=True)
class Difference:
    account: str
    asset: str
    read_model: str
    log: int
    read: int


@dataclass
class ReplayReport:
    positions: dict[str, int]  # read model -> the log position it was compared at
    replayed_to: int  # the log was read up to here (the furthest projector's position)
    events: int  # events that carried a journal entry, up to there
    accounts: int  # (account, asset) pairs compared
    differences: list[Difference] = field(default_factory=list)
    unbalanced: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def agree(self) -> bool:
        return not self.differences and not self.unbalanced

    def as_dict(self, limit: int = 500) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "positions": self.positions,
            "replayed_to": self.replayed_to,
            "events": self.events,
            "accounts": self.accounts,
            "differences_total": len(self.differences),
            "differences": [d.__dict__ for d in self.differences[:limit]],
            "unbalanced_entries": [
                {"position": p, "entry_id": e} for p, e in self.unbalanced[:limit]
            ],
            "seconds": round(self.seconds, 3),
        }


def _positions(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT projection, position FROM read.tracking").fetchall()
    tracked = {name: int(position) for name, position in rows}
    return {m.name: tracked.get(m.projection, 0) for m in READ_MODELS}


def _read(conn: psycopg.Connection[Any], model: ReadModel) -> Balances:
    return {(a, s): int(n) for a, s, n in conn.execute(model.sql).fetchall()}


def compare(model: ReadModel, log: Balances, read: Balances) -> tuple[int, list[Difference]]:
    """How many (account, asset) pairs were compared, and those that differ (a missing row
    counts as zero)."""
    keys = {k for k in log if model.covers(*k)} | set(read)
    differences = [
        Difference(key[0], key[1], model.name, log.get(key, 0), read.get(key, 0))
        for key in sorted(keys)
        if log.get(key, 0) != read.get(key, 0)
    ]
    return len(keys), differences


def replay_audit(
    conninfo: str,
    *,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Rebuild every balance from the log and diff it against the read models. `on_start`
    is told how many log positions will be read; `progress` how many each step covered."""
    began = time.perf_counter()
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        positions = _positions(conn)
        reads = {m.name: _read(conn, m) for m in READ_MODELS}
        furthest = max(positions.values(), default=0)
        if on_start:
            on_start(furthest)
        replayed = replay_log(conn, furthest, stops=list(positions.values()), progress=progress)
    report = ReplayReport(positions, replayed.head, replayed.entries, 0)
    report.unbalanced = replayed.unbalanced
    for model in READ_MODELS:
        logged = replayed.at[positions[model.name]]
        compared, differences = compare(model, logged, reads[model.name])
        if model.name == "account_balances":
            report.accounts = compared
        report.differences.extend(differences)
    report.seconds = time.perf_counter() - began
    return report

"""The daemon's step: every live projector fed from one read of each page, each in its own
savepoint, so one failing projector holds back only itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from psycopg import Cursor

from projections.framework import Envelope, ProjectionRunner
from projections.registry import all_projectors
from projections.together import run_page_together, run_together_until_caught_up
from rebuild_support import fresh_rebuild_differences, tracking


class Failing:
    """Wraps a projector and fails its pages while `broken` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.broken = True

    def wants(self, topic: str) -> bool:
        return bool(self.inner.wants(topic))

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        self.inner.apply(cur, envelopes)  # its writes must be rolled back with the savepoint
        if self.broken:
            raise RuntimeError("a bug in this projector")


def head(core) -> int:
    with core.read_pool.connection() as conn:
        return int(conn.execute("SELECT max(notification_id) FROM ledger_events").fetchone()[0])


def test_one_failing_projector_holds_back_only_itself(fresh_core) -> None:
    core = fresh_core
    member = uuid4()
    for i in range(30):
        core.wallets.earn_points(key=f"earn-{i}", member_id=member, points=10 + i)
    runners = [ProjectionRunner(core.app, core.read_pool, p) for p in all_projectors()]
    journal = next(r for r in runners if r.projector.name == "journal")
    failing = Failing(journal.projector)
    journal.projector = failing  # type: ignore[assignment]

    run_together_until_caught_up(runners)  # returns although the journal cannot advance
    positions = tracking(core)
    assert positions["journal"] == 0
    assert {n for n, p in positions.items() if p != head(core)} == {"journal"}
    with core.read_pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM read.journal_lines").fetchone()[0] == 0

    failing.broken = False
    assert run_page_together(runners) > 0  # the retry reads from the journal's position
    run_together_until_caught_up(runners)
    assert set(tracking(core).values()) == {head(core)}
    assert journal.applied == head(core)
    assert fresh_rebuild_differences(core) == {}


def test_pages_smaller_than_the_log_reach_the_same_state(fresh_core) -> None:
    core = fresh_core
    for i in range(25):
        core.wallets.earn_points(key=f"e-{i}", member_id=uuid4(), points=5)
    runners = [ProjectionRunner(core.app, core.read_pool, p) for p in all_projectors()]
    while run_page_together(runners, page_size=7):
        pass
    assert set(tracking(core).values()) == {head(core)}
    assert fresh_rebuild_differences(core) == {}

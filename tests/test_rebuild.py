"""Runners and rebuilds under fire: a runner or a rebuild killed mid-batch (SIGKILL) and
restarted applies no event twice and skips none; a rebuild while commands keep coming loses
nothing; the swap leaves the live runner going on from the shadow's position. Every read
model (distribution, mall and shifts too) rebuilds to what the live runner projects, in
windows of any size and when a rebuild is resumed after more events came."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from bench.rebuild import generate

from audit.replay import replay_balances
from distribution_support import bind, card_order, give_commission, member, orders_of
from ledger import accounts as acc
from ledger.services.shifts import ShiftService
from orders_support import Clock, make_station
from projections.framework import ProjectionRunner
from projections.journal import JournalProjector
from projections.rebuild import NotRebuildable, RebuildBusy, rebuild, rebuildable
from projections.shifts import SqlShiftReadings
from rebuild_support import differences, fresh_rebuild_differences, project_live, tracking
from support import nonzero, read_balances

ROOT = Path(__file__).resolve().parents[1]


def head(core) -> int:
    with psycopg.connect(core.owner_url) as conn:
        return int(conn.execute("SELECT max(notification_id) FROM ledger_events").fetchone()[0])


def start(script: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"finished before the kill: {proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("never got going")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture
def history(fresh_core):
    generate(fresh_core, 3_000)
    return fresh_core


def test_a_runner_killed_mid_batch_resumes_without_applying_twice_or_skipping(history) -> None:
    core = history
    top = head(core)
    proc = start(
        f"""
        from infra.bootstrap import build_core
        from infra.settings import Settings
        from projections.framework import ProjectionRunner
        from projections.journal import JournalProjector
        core = build_core(Settings(environment="test"), {core.owner_url!r}, migrate=False,
                          group_commit=False)
        ProjectionRunner(core.app, core.read_pool, JournalProjector(), page_size=50
                         ).run_until_caught_up()
        """
    )
    kill_when(proc, lambda: tracking(core).get("journal", 0) > 0)
    stopped_at = tracking(core)["journal"]
    assert 0 < stopped_at < top, "the kill came after the runner had finished"
    ProjectionRunner(core.app, core.read_pool, JournalProjector()).run_until_caught_up()
    assert nonzero(read_balances(core)) == nonzero(replay_balances(core.app))
    with psycopg.connect(core.owner_url) as conn:
        lines, entries = conn.execute(
            "SELECT count(*), count(DISTINCT entry_id) FROM read.journal_lines"
        ).fetchone()
    expected = [
        len(e.entry.legs)
        for n in core.app.recorder.select_notifications(start=1, limit=10**6)
        if (e := core.app.mapper.to_domain_event(n)) and getattr(e, "entry", None)
    ]
    assert (lines, entries) == (sum(expected), len(expected))


def test_a_rebuild_killed_mid_bulk_resumes_from_its_shadow(history) -> None:
    core = history
    project_live(core)
    top = head(core)
    proc = start(
        f"""
        from infra.bootstrap import build_core
        from infra.settings import Settings
        from projections.rebuild import rebuild
        core = build_core(Settings(environment="test"), {core.owner_url!r}, migrate=False,
                          group_commit=False)
        rebuild(core, {core.owner_url!r}, lanes=0, page=100, progress=False, fresh=True)
        """
    )

    def started() -> bool:
        try:
            return any(p > 0 for p in tracking(core, "read_shadow").values())
        except psycopg.errors.UndefinedTable:
            return False

    kill_when(proc, started)
    shadow = tracking(core, "read_shadow")
    assert min(shadow.values()) < top, "the kill came after the bulk phase"
    result = rebuild(core, core.owner_url, lanes=0, progress=False)  # resumes
    assert result.events_read <= top - min(shadow.values())
    after = tracking(core)
    assert all(after[name] == top for name in result.projectors)
    assert fresh_rebuild_differences(core) == {}
    assert nonzero(read_balances(core)) == nonzero(replay_balances(core.app))


def test_lanes_in_processes_of_their_own_rebuild_what_the_live_runner_projects(history) -> None:
    core = history
    project_live(core)
    result = rebuild(
        core, core.owner_url, lanes=2, page=300, progress=False, fresh=True, swap=False
    )
    assert len(result.lanes) == 2
    assert sorted(n for lane in result.lanes for n in lane["names"]) == sorted(result.projectors)
    assert all(lane["events"] > 0 and lane["seconds"]["total"][0] > 0 for lane in result.lanes)
    assert differences(core) == {}
    with psycopg.connect(core.owner_url) as conn:  # statistics gathered, for the live plans
        analyzed = conn.execute(
            "SELECT count(DISTINCT tablename) FROM pg_stats WHERE schemaname = 'read_shadow' "
            "AND tablename IN ('journal_lines', 'fuel_orders', 'account_balances')"
        ).fetchone()[0]
    assert analyzed == 3


def test_a_lane_stops_when_the_rebuild_that_started_it_is_killed(history) -> None:
    """The lane is held on a lock, so only its parent's death can end it."""
    core = history
    fresh_rebuild_differences(core)  # a shadow schema with its tracking rows
    with psycopg.connect(core.owner_url) as holder:
        holder.execute("LOCK TABLE read_shadow.tracking IN ACCESS EXCLUSIVE MODE")
        proc = start(
            f"""
            import time
            from projections.lane_process import LaneProcess
            from projections.rebuild_lane import Lane
            lane = LaneProcess(Lane(0, {core.owner_url!r}, ("journal",), (), 10**9), print)
            print(lane.proc.pid, flush=True)
            time.sleep(120)
            """
        )
        lane_pid = int(proc.stdout.readline())  # type: ignore[union-attr]
        time.sleep(1.0)
        assert alive(lane_pid), "the lane ended before its parent was killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while alive(lane_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(lane_pid)


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for whoever adopted it to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_rebuild_during_live_writes_loses_nothing(history) -> None:
    core = history
    project_live(core)
    stop = threading.Event()
    errors: list[BaseException] = []
    members = [uuid4() for _ in range(4)]
    station = acc.station_income(uuid4())

    def write() -> None:
        i = 0
        try:
            while not stop.is_set():
                m = members[i % len(members)]
                core.wallets.top_up(key=f"w{m}{i}", member_id=m, amount=500, bonus=10)
                core.wallets.pay_with_card(
                    key=f"p{m}{i}", member_id=m, amount=300, destinations=[(station, 300)]
                )
                i += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    def follow() -> None:
        try:
            while not stop.is_set():
                project_live(core, page_size=50)
                time.sleep(0.01)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=write), threading.Thread(target=follow)]
    for t in threads:
        t.start()
    try:
        before = head(core)
        result = rebuild(
            core, core.owner_url, lanes=0, page=500, progress=False, fresh=True,
            on_bulk_done=lambda: time.sleep(0.5),
        )  # fmt: skip
        assert head(core) > before, "no write landed during the rebuild"
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    project_live(core)
    assert set(result.projectors) == {p.name for p in rebuildable()}
    assert nonzero(read_balances(core)) == nonzero(replay_balances(core.app))
    assert fresh_rebuild_differences(core) == {}


def test_one_rebuild_at_a_time_and_only_schema_aware_projectors(core) -> None:
    with pytest.raises(NotRebuildable):
        rebuildable(["outbox"])
    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7263005)")
        with pytest.raises(RebuildBusy):
            rebuild(core, core.owner_url, ["stations"], lanes=0, progress=False, lock_wait=0.5)
        conn.execute("SELECT pg_advisory_unlock(7263005)")


def test_the_journal_refuses_an_unbalanced_entry_in_the_shadow_too(fresh_core) -> None:
    core = fresh_core
    core.wallets.top_up(key="k", member_id=uuid4(), amount=100)
    rebuild(core, core.owner_url, ["journal"], lanes=0, progress=False, swap=False)
    for schema in ("read", "read_shadow"):
        with psycopg.connect(core.owner_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                f"INSERT INTO {schema}.journal_lines (position, entry_id, leg, account, asset, "
                "amount, kind, occurred_at) VALUES (1, %(e)s, 0, 'a', 'CNY', 5, 'x', now()), "
                "(1, %(e)s, 1, 'b', 'CNY', -4, 'x', now())",
                {"e": uuid4()},
            )


# -- every read model, with carry-over between windows and a resumed rebuild -----------------


class Activity:
    """Commission, withdrawals, points lots, the mall and shifts, in two halves whose second
    changes rows the first made (a refund of a paid order, a shipped mall order, a closed
    shift, points spent from earlier lots)."""

    def __init__(self, core) -> None:
        self.core, self.clock = core, Clock()
        self.orders = orders_of(core, self.clock)
        self.shifts = ShiftService(core.runner, SqlShiftReadings(core.read_pool), clock=self.clock)
        self.station = make_station(core, rate_bps=100)
        self.referrer = member(core, "r")
        self.referees = [member(core, "e1"), member(core, "e2")]

    def first_half(self) -> None:
        core = self.core
        for e in self.referees:
            bind(core, e, self.referrer)
            core.wallets.top_up(key=f"{e}-t", member_id=e, amount=1_000_000)
        self.paid = [card_order(self.orders, e, self.station, 60_000) for e in self.referees * 2]
        give_commission(core, self.referrer, 5_000)
        self.requested = [
            core.withdrawals.request_for_member(member_id=self.referrer, key=k, amount_fen=1_000)
            for k in ("w1", "w2", "w3")
        ]
        core.wallets.earn_points(key="p", member_id=self.referees[0], points=5_000)
        category = core.mall.create_category(key="hats", name="Hats")
        self.goods = UUID(
            core.mall.create_goods(
                key="cap", name="Cap", points_price=100, stock=9,
                category_id=category["category_id"],
            )["goods_id"]
        )  # fmt: skip
        core.mall.set_published(self.goods, True)
        self.mall_order = core.mall.redeem(
            member_id=self.referees[0], key="m1", goods_id=self.goods, quantity=2,
            delivery="ship", address="1 Road",
        )  # fmt: skip
        project_live(core)  # a shift's close reads the read models
        self.shift = self.shifts.open(
            station_id=self.station, cashier="Wang", opened_by="t", key="s1"
        )

    def second_half(self) -> None:
        core = self.core
        self.orders.refund(
            order_id=self.paid[0], out_refund_no="r1", amount_fen=20_000, reason="t",
            requested_by="station",
        )  # fmt: skip
        core.commission.release_for(self.referrer, self.clock.now + timedelta(days=8))
        w1, w2, w3 = (UUID(w["withdrawal_id"]) for w in self.requested)
        bill = core.withdrawals.approve(withdrawal_id=w1, by="admin")["out_bill_no"]
        core.withdrawals.record_payout_result(out_bill_no=bill, state="SUCCESS")
        core.withdrawals.reject(withdrawal_id=w2, by="admin", reason="no")
        bill = core.withdrawals.approve(withdrawal_id=w3, by="admin")["out_bill_no"]
        core.withdrawals.record_payout_result(out_bill_no=bill, state="FAIL")
        core.withdrawals.retry(withdrawal_id=w3, by="admin")
        order_id = UUID(self.mall_order["order_id"])
        core.mall.ship(order_id=order_id, by="admin", tracking_no="SF1")
        second = core.mall.redeem(member_id=self.referees[0], key="m2", goods_id=self.goods)
        core.mall.cancel(order_id=UUID(second["order_id"]), by="admin", reason="no")
        core.mall.update_goods(self.goods, stock=20, name="Blue cap")
        project_live(core)
        self.shifts.close(
            station_id=self.station, shift_id=UUID(self.shift["shift_id"]),
            counted={"card": 100_000, "wechat": 0, "alipay": 0}, closed_by="t",
        )  # fmt: skip
        self.shifts.open(station_id=self.station, cashier="Li", opened_by="t", key="s2")
        self.clock.advance(days=1)
        card_order(self.orders, self.referees[1], self.station, 30_000)


def test_commission_withdrawals_points_mall_and_shifts_rebuild_as_projected_live(
    fresh_core,
) -> None:
    core = fresh_core
    activity = Activity(core)
    activity.first_half()
    activity.second_half()
    project_live(core, page_size=3)
    with psycopg.connect(core.owner_url) as conn:
        for table in ("commissions", "withdrawals", "points_lots", "mall_orders", "shifts"):
            assert conn.execute(f"SELECT count(*) FROM read.{table}").fetchone()[0] > 0, table
    assert {"distribution", "mall", "shifts"} <= {p.name for p in rebuildable()}
    for page in (1, 7, 10_000):
        assert fresh_rebuild_differences(core, page=page) == {}, page


def test_a_rebuild_resumed_after_more_events_reads_back_the_rows_it_wrote(fresh_core) -> None:
    """The second rebuild goes on from the first one's shadow: its folds find the rows the
    events change in the shadow tables, not in memory."""
    core = fresh_core
    activity = Activity(core)
    activity.first_half()
    generate(core, 400)
    first = rebuild(core, core.owner_url, lanes=0, progress=False, fresh=True, swap=False)
    activity.second_half()
    generate(core, 400, part=1)
    second = rebuild(core, core.owner_url, lanes=0, progress=False, swap=False, page=50)
    assert 0 < second.events_read <= head(core) - first.head
    project_live(core)
    assert differences(core) == {}

"""CSV export (issue goal: >= 100,000 rows/s with memory flat): `infra.exports.copy_csv`,
the path the export endpoint and export jobs stream, over 500,000 fuel-order rows.

The rows go straight into read.fuel_orders (an export reads the read model only). The
timed run counts rows/s and samples this process's resident memory; two runs under
tracemalloc (a tenth of the rows, then all of them) show whether the peak grows with the
row count: flat means the large run's peak is within 1.5x the small one's plus 1 MiB (the
test's own bound).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from uuid import UUID, uuid4

import psycopg

from bench import procs, scale
from bench.report import Report
from infra import exports
from infra.bootstrap import build_core
from infra.settings import Settings
from projections.office_queries import FuelOrderFilters

ROWS = scale.count(500_000, 100_000)
GOAL_ROWS_PER_S = 100_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fill_orders(owner_url: str, station: UUID, count: int) -> None:
    """`count` paid orders at `station`, made by PostgreSQL (generate_series)."""
    with psycopg.connect(owner_url) as conn:
        conn.execute(
            "INSERT INTO read.fuel_orders (order_id, out_trade_no, member_id, station_id, grade, "
            "nozzle, amount_fen, price_fen_per_litre, volume_ml, coupon_fen, points_used, "
            "points_fen, payable_fen, status, method, card_fen, created_at, expires_at, paid_at, "
            "updated_at, position) "
            "SELECT gen_random_uuid(), md5(%s || i::text), gen_random_uuid(), %s, "
            "'92#', 1 + i %% 8, 10000 + i %% 50000, 789, 25348, 0, 0, 0, "
            "10000 + i %% 50000, 'paid', 'card', "
            "10000 + i %% 50000, now() - make_interval(secs => i), now(), "
            "now() - make_interval(secs => i), now(), i FROM generate_series(1, %s) AS i",
            (str(station), station, count),
        )
        conn.execute("ANALYZE read.fuel_orders")


def drop_orders(owner_url: str, stations: list[UUID]) -> None:
    with psycopg.connect(owner_url) as conn:
        conn.execute("DELETE FROM read.fuel_orders WHERE station_id = ANY(%s)", (stations,))


class RssPeak:
    def __init__(self) -> None:
        self.base = procs.rss_bytes(os.getpid())
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, procs.rss_bytes(os.getpid()))

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def drain(pool: object, station: UUID) -> tuple[int, int, float]:
    """(data lines, bytes, seconds) of one CSV export of the station's orders."""
    sql, params = exports.KINDS["fuel-orders"].query(FuelOrderFilters(station_id=station))
    lines = size = 0
    began = time.perf_counter()
    for block in exports.copy_csv(pool, sql, params):  # type: ignore[arg-type]
        lines += block.count(b"\n")
        size += len(block)
    return lines - 1, size, time.perf_counter() - began  # less the header


def traced_peak(pool: object, station: UUID) -> int:
    tracemalloc.start()
    try:
        drain(pool, station)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(report: Report, owner_url: str) -> None:
    log(f"CSV export: {ROWS:,} fuel-order rows through exports.copy_csv")
    small, large = uuid4(), uuid4()
    fill_orders(owner_url, small, ROWS // 10)
    fill_orders(owner_url, large, ROWS)
    core = build_core(Settings(), owner_url, migrate=False, group_commit=False, pool_size=2)
    try:
        drain(core.read_pool, small)  # warm: plan, buffers
        with RssPeak() as rss:
            rows, size, seconds = drain(core.read_pool, large)
        peak_small = traced_peak(core.read_pool, small)
        peak_large = traced_peak(core.read_pool, large)
    finally:
        core.close()
        drop_orders(owner_url, [small, large])
    if rows != ROWS:
        raise AssertionError(f"exported {rows} rows of {ROWS}")
    flat = peak_large < peak_small * 1.5 + 2**20
    rate = rows / seconds
    report.add(
        "export.csv",
        round(rate, 1),
        "rows/s",
        rows=rows,
        mib=round(size / 2**20, 1),
        seconds=round(seconds, 2),
        rss_growth_mib=round((rss.peak - rss.base) / 2**20, 2),
        traced_peak_mib=round(peak_large / 2**20, 2),
        traced_peak_tenth_mib=round(peak_small / 2**20, 2),
        memory_flat=flat,
        loadavg_1m=procs.loadavg(),
    )
    log(
        f"  export.csv: {rows:,} rows ({size / 2**20:.0f} MiB) in {seconds:.2f} s = "
        f"{rate:,.0f} rows/s; RSS grew {(rss.peak - rss.base) / 2**20:.1f} MiB; traced peak "
        f"{peak_large / 2**20:.2f} MiB vs {peak_small / 2**20:.2f} MiB for a tenth "
        f"({'flat' if flat else 'NOT flat'})"
    )

"""Nearby stations (M2): 5,000 stations over a 200 km square, nearest-first queries.

Registers the stations through StationCatalogService (threads, group commit), projects them,
then times the query the router runs (bounding box on the integer columns, then haversine)
for random points of the area, against the same query without the box (the naive baseline:
haversine over the whole table), and with an index on lat_e6 alone instead of (lat_e6,
lng_e6). Last, the HTTP endpoint through TestClient.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import psycopg

from bench import scale
from bench.report import Report
from infra.bootstrap import Core, build_core
from infra.settings import Settings
from projections import station_queries as q
from projections.framework import ProjectionRunner
from projections.stations import StationsProjector

STATIONS = scale.count(5_000, 500)
QUERIES = scale.count(2_000, 200)
HTTP_REQUESTS = scale.count(500, 100)
# Around Chengdu: 1.8 degrees of latitude by 2.1 of longitude, about 200 km by 200 km.
LAT_E6 = (29_800_000, 31_600_000)
LNG_E6 = (103_000_000, 105_100_000)
RADIUS_M = 10_000  # the endpoint's default radius and limit
LIMIT = 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def register_stations(core: Core, count: int, seed: int = 7) -> list[UUID]:
    rng = random.Random(seed)
    run = rng.getrandbits(32)
    specs = [
        (i, rng.randint(*LAT_E6), rng.randint(*LNG_E6), rng.randint(700, 800)) for i in range(count)
    ]

    def one(spec: tuple[int, int, int, int]) -> UUID:
        i, lat_e6, lng_e6, price = spec
        code = f"bench-{run:08x}-{i}"
        station = core.catalog.register(
            code=code,
            name=f"Station {i}",
            address=f"{i} Bench Rd",
            phone="+86 28 0000 0000",
            lat_e6=lat_e6,
            lng_e6=lng_e6,
            settlement_rate_bps=80,
            rating=40,
        )
        station_id = UUID(station["station_id"])
        for grade, nozzles, base in (("92#", [1, 2], price), ("95#", [3], price + 50)):
            core.catalog.configure_grade(station_id, grade, nozzles, key=f"{code}:{grade}")
            for n, p in enumerate((base, base + (-7 if i % 2 else 9))):
                core.catalog.change_price(station_id, grade, p, "bench", key=f"{code}:{grade}:{n}")
        return station_id

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, specs))


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    n = len(ordered)
    return {
        "p50_ms": round(ordered[n // 2], 3),
        "p99_ms": round(ordered[min(n - 1, int(0.99 * n))], 3),
    }


def points(n: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randint(*LAT_E6), rng.randint(*LNG_E6)) for _ in range(n)]


def timed(call: Callable[[int, int], Any], where: list[tuple[int, int]]) -> list[float]:
    """Milliseconds per call, one call per point."""
    for lat, lng in where[:20]:  # warm: pool connection, prepared statement, plan
        call(lat, lng)
    latencies = []
    for lat, lng in where:
        began = time.perf_counter()
        call(lat, lng)
        latencies.append(1000 * (time.perf_counter() - began))
    return latencies


def query_with(core: Core, prefilter: bool) -> Callable[[int, int], Any]:
    def call(lat: int, lng: int) -> Any:
        with core.read_pool.connection() as conn:
            return q.nearby(conn, lat, lng, RADIUS_M, limit=LIMIT, prefilter=prefilter)

    return call


def server_side(core: Core, prefilter: bool, where: list[tuple[int, int]]) -> dict[str, Any]:
    """PostgreSQL's own execution time and the shared buffers each query touches (EXPLAIN
    ANALYZE, TIMING OFF): the work of each variant without the client's round trip."""
    executions, blocks, found = [], 0, 0
    with core.read_pool.connection() as conn:
        for lat, lng in where:
            sql, params = q.nearby_sql(lat, lng, RADIUS_M, limit=LIMIT, prefilter=prefilter)
            row = conn.execute("EXPLAIN (ANALYZE, TIMING OFF, BUFFERS, FORMAT JSON) " + sql, params)
            plan = row.fetchone()[0][0]  # type: ignore[index]
            executions.append(plan["Execution Time"])
            blocks += plan["Plan"].get("Shared Hit Blocks", 0)
            blocks += plan["Plan"].get("Shared Read Blocks", 0)
            found += plan["Plan"]["Actual Rows"]
    exec_ms = quantiles(executions)
    return {
        "exec_p50_ms": exec_ms["p50_ms"],
        "exec_p99_ms": exec_ms["p99_ms"],
        "buffers_per_query": round(blocks / len(where), 1),
        "found_per_query": round(found / len(where), 1),
    }


def http_with(client: Any) -> Callable[[int, int], Any]:
    def call(lat: int, lng: int) -> Any:
        params = {"lat": f"{lat / 1e6:.6f}", "lng": f"{lng / 1e6:.6f}", "radius_km": "10"}
        response = client.get("/v1/stations/nearby", params=params)
        response.raise_for_status()
        return response.json()["items"]

    return call


def add_rows(report: Report, name: str, stats: dict[str, Any], **extra: Any) -> None:
    for key in ("p50_ms", "p99_ms", "exec_p50_ms"):
        if key in stats:
            report.add(f"{name}_{key}", stats[key], "ms", **stats, **extra)
    shown = ", ".join(f"{k} {v}" for k, v in stats.items())
    log(f"  {name}: {shown}")


def swap_index(owner_url: str, lat_only: bool) -> None:
    """Put the box index in one of its two shapes (the migration ships (lat_e6, lng_e6))."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if lat_only:
            conn.execute("CREATE INDEX IF NOT EXISTS stations_lat ON read.stations (lat_e6)")
            conn.execute("DROP INDEX IF EXISTS read.stations_lat_lng")
        else:
            conn.execute(
                "CREATE INDEX IF NOT EXISTS stations_lat_lng ON read.stations (lat_e6, lng_e6)"
            )
            conn.execute("DROP INDEX IF EXISTS read.stations_lat")
        conn.execute("ANALYZE read.stations")


VARIANTS = (  # name, bounding box, index on lat_e6 alone
    ("nearby", True, False),
    ("nearby_naive", False, False),
    ("nearby_lat_index", True, True),
)
ROUNDS = 4  # the variants take turns, so a busy moment of the machine hits them all


def compare_variants(report: Report, core: Core, owner_url: str) -> None:
    where = points(QUERIES, seed=11)
    latencies: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    server: dict[str, dict[str, Any]] = {}
    try:
        for r in range(ROUNDS):
            for name, prefilter, lat_only in VARIANTS[r % 3 :] + VARIANTS[: r % 3]:
                swap_index(owner_url, lat_only=lat_only)
                latencies[name] += timed(query_with(core, prefilter), where[r::ROUNDS])
                if r == 0:
                    server[name] = server_side(core, prefilter, points(200, seed=13))
    finally:
        swap_index(owner_url, lat_only=False)
    extra = {"stations": STATIONS, "queries": QUERIES, "radius_km": RADIUS_M // 1000}
    for name, _, _ in VARIANTS:
        add_rows(report, name, {**quantiles(latencies[name]), **server[name]}, **extra)
    for other in ("nearby_naive", "nearby_lat_index"):
        for key in ("p50_ms", "p99_ms", "exec_p50_ms"):
            value = report.ratio(f"{other}_{key}/nearby_{key}", f"{other}_{key}", f"nearby_{key}")
            log(f"  {other} / nearby, {key}: {value}x")


def run(report: Report, owner_url: str) -> None:
    log(f"nearby: {STATIONS:,} stations over ~200 x 200 km, radius {RADIUS_M // 1000} km")
    core = build_core(Settings(), owner_url)
    try:
        began = time.perf_counter()
        register_stations(core, STATIONS)
        took = time.perf_counter() - began
        commands = STATIONS * 7
        report.add("stations_register", round(commands / took, 1), "commands/s", seconds=took)
        log(f"  registered {STATIONS:,} stations ({commands:,} commands) in {took:.1f} s")

        began = time.perf_counter()
        ProjectionRunner(core.app, core.read_pool, StationsProjector()).run_until_caught_up()
        took = time.perf_counter() - began
        report.add("stations_projection", round(commands / took, 1), "events/s", seconds=took)
        log(f"  projected in {took:.1f} s (reading past the log's other events too)")

        compare_variants(report, core, owner_url)

        from fastapi.testclient import TestClient

        from api.main import create_app

        where = points(HTTP_REQUESTS, seed=17)
        with TestClient(create_app(core=core)) as client:
            http = timed(http_with(client), where)
            # TestClient's own cost per request, measured on /healthz in the same run.
            floor = timed(lambda _lat, _lng: client.get("/healthz"), where)
        extra = {"stations": STATIONS, "requests": HTTP_REQUESTS}
        add_rows(report, "nearby_http", quantiles(http), **extra)
        add_rows(report, "testclient_healthz", quantiles(floor), **extra)
    finally:
        core.close()


if __name__ == "__main__":
    from bench.database import scratch_database

    with scratch_database() as target:
        bench_report = Report()
        run(bench_report, target.url)
        bench_report.write()

"""HTTP card payments/s through real uvicorn processes, against an empty POST on the same
server in the same run (issue goal: >= 0.45x the empty POST, p99 <= 50 ms at 32
connections), with one worker and with two; the read endpoints at 200/s; the API's
resident memory under that load (goal <= 300 MB).

The load generator is wrk (bench/wrk.py), one thread with 32 connections, leaving the other
core to the server. Every payment is `POST /v1/orders/{id}/pay {"method": "card"}` on an
order of its own, from its member's token. The members are signed in and topped up through
the service layer; their orders are made just before the run through the server under test
(`POST /v1/orders`, as the mini-program does before it pays), at hundreds of stations so that
no station's lock serialises them, enough for the rate the box can reach.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx

from api.auth import MEMBER_SCOPE, issue_access_token
from bench import nearby, procs, read_latency, scale, wrk
from bench.cpu import backend_cpu_probe
from bench.read_latency import Get
from bench.report import Report
from bench.server import ApiServer
from infra.bootstrap import Core, build_core
from infra.settings import Settings
from projections.framework import ProjectionRunner
from projections.registry import by_name

CONNECTIONS = 32
SECONDS = scale.seconds(10.0, least=4.0)
READ_SECONDS = scale.seconds(10.0, least=4.0)
STATIONS = scale.count(500, 100)
RATE_CAP = 1500  # payments/s the first stock is made for; past it, requests repeat (reported)
# Before timing, every member pays once (orders go to members in turn): the server then has
# each member's aggregates in its cache, as a long-running server has for its active members
# (the cache holds 200,000). Timed payments are steady-state ones, not first sight of a
# member; a cold member costs two more reads of the store (Member and Wallet).
WARM_RATE = 400  # payments/s assumed when sizing the warm-up run


def warm_rounds(workers: int) -> int:
    """Payments per member before the measured run. Each worker caches what it has loaded,
    and a payment lands on any worker: with two, four rounds leave a member cold in a
    worker one time in sixteen (one round left half of them cold in each, and the measured
    run paid for loading a wallet and a member on almost every other payment)."""
    return 1 if workers == 1 else 4


ORDER_MAKERS = 16  # client threads making the orders through the server
GOAL_RATIO = 0.45
GOAL_P99_MS = 50.0
GOAL_RSS_MB = 300.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Members:
    """Signed-in members with money on their fuel cards, each with an access token."""

    members: list[tuple[UUID, str]]  # (member id, token)


@dataclass
class Stock:
    """Unpaid orders, each with its member's access token."""

    orders: list[tuple[str, str]]  # (order id, token)
    members: list[tuple[UUID, str]]  # (member id, token)

    def requests(self) -> list[tuple[str, str, str | None, str | None]]:
        body = '{"method": "card"}'
        return [("POST", f"/v1/orders/{o}/pay", t, body) for o, t in self.orders]


def make_members(core: Core, settings: Settings, count: int) -> Members:
    """Members as the mini-program makes them: signed in (a Member aggregate, read by the
    payment for its referrer), then a card top-up."""

    def member(i: int) -> UUID:
        signed = core.members.sign_in(f"bench-http-{uuid4().hex}", None)
        member_id = UUID(signed["member_id"])
        core.wallets.top_up(key=f"bench-http-{member_id}", member_id=member_id, amount=1_000_000)
        return member_id

    with ThreadPoolExecutor(32) as pool:
        ids = list(pool.map(member, range(count)))
    return Members([(m, issue_access_token(settings, m, "member", MEMBER_SCOPE)[0]) for m in ids])


def make_orders(base: str, members: Members, stations: list[UUID], count: int) -> Stock:
    """`count` orders made through the server under test, as the mini-program makes them
    just before it pays (so the server that pays has seen the order, as in real use)."""
    people = members.members

    def order(client: httpx.Client, i: int) -> str:
        member, token = people[i % len(people)]
        answer = client.post(
            "/v1/orders",
            json={
                "station_id": str(stations[i % len(stations)]),
                "grade": "92#",
                "nozzle": 1,
                "amount_fen": 5_000,
            },
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{uuid4()}"},
        )
        answer.raise_for_status()
        return str(answer.json()["order_id"])

    def share(lane: int) -> list[tuple[int, str]]:
        with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
            return [(i, order(client, i)) for i in range(lane, count, ORDER_MAKERS)]

    with ThreadPoolExecutor(ORDER_MAKERS) as pool:
        made = sorted(pair for lane in pool.map(share, range(ORDER_MAKERS)) for pair in lane)
    return Stock(
        orders=[(o, people[i % len(people)][1]) for i, o in made],
        members=people,
    )


def project(core: Core, names: tuple[str, ...]) -> None:
    for name in names:
        ProjectionRunner(core.app, core.read_pool, by_name(name)).run_until_caught_up()


@dataclass(frozen=True)
class Measured:
    result: wrk.WrkResult
    server_cpu_ms: float  # CPU of the server's processes per request
    pg_cpu_ms: float | None  # CPU of the database's backends per request (local server)

    def row(self) -> dict[str, Any]:
        pg = None if self.pg_cpu_ms is None else round(self.pg_cpu_ms, 3)
        return {
            **self.result.summary(),
            "server_cpu_ms_per_request": round(self.server_cpu_ms, 3),
            "pg_cpu_ms_per_request": pg,
            "connections": CONNECTIONS,
            "loadavg_1m": procs.loadavg(),
        }


def measure(wrk_path: str, server: ApiServer, requests_file: Path, seconds: float) -> Measured:
    pg = backend_cpu_probe(server.url)
    before, pg_before = server.cpu_seconds(), pg() if pg else 0.0
    result = wrk.run(wrk_path, server.base, requests_file, connections=CONNECTIONS, seconds=seconds)
    cpu, pg_cpu = server.cpu_seconds() - before, (pg() - pg_before) if pg else None
    per = 1000 / max(1, result.requests)
    return Measured(result, cpu * per, None if pg_cpu is None else pg_cpu * per)


def read_endpoints(settings: Settings, stock: Stock, stations: list[UUID]) -> dict[str, list[Get]]:
    rng = random.Random(5)
    spots = nearby.points(500, seed=23)
    partners = [
        (s, issue_access_token(settings, uuid4(), "partner", (f"station:{s}",))[0])
        for s in stations[:50]
    ]
    return {
        "member_orders": [Get("/v1/orders", {}, token) for _, token in stock.members[:500]],
        "stations_nearby": [
            Get(
                "/v1/stations/nearby",
                {"lat": f"{lat / 1e6:.6f}", "lng": f"{lng / 1e6:.6f}", "radius_km": "10"},
                None,
            )
            for lat, lng in spots
        ],
        "partner_station_orders": [
            Get(f"/v1/partner/stations/{s}/orders", {"limit": "50"}, token)
            for s, token in rng.sample(partners, len(partners))
        ],
    }


def add_pair(report: Report, suffix: str, empty: Measured, pay: Measured) -> float:
    report.add(f"http.empty_post{suffix}", round(empty.result.rate, 1), "requests/s", **empty.row())
    report.add(f"http.card_payment{suffix}", round(pay.result.rate, 1), "payments/s", **pay.row())
    ratio = report.ratio(
        f"http.card_payment_vs_empty_post{suffix}",
        f"http.card_payment{suffix}",
        f"http.empty_post{suffix}",
    )
    for name, m in (("empty POST", empty), ("card payment", pay)):
        r = m.result
        log(
            f"  {name}{suffix}: {r.rate:,.0f}/s p50 {r.p50_ms:.1f} ms p99 {r.p99_ms:.1f} ms, "
            f"CPU a request: server {m.server_cpu_ms:.2f} ms, PostgreSQL "
            f"{m.pg_cpu_ms or 0:.2f} ms; errors {r.errors}, "
            f"repeats {r.repeats}"
        )
    log(f"  card payment / empty POST{suffix}: {ratio}x (goal >= {GOAL_RATIO}x)")
    if pay.result.repeats:
        log(f"  WARNING: {pay.result.repeats} payments repeated an order (too few orders)")
    return ratio or 0.0


def serve_and_measure(
    report: Report,
    wrk_path: str,
    core: Core,
    data: Path,
    workers: int,
    members: Members,
    stations: list[UUID],
    orders: int,
    reads: bool,
) -> tuple[Measured, Measured, procs.RssSampler]:
    files = Path(tempfile.mkdtemp(prefix="ledger-bench-wrk-"))
    empty_file = wrk.write_requests(files / "empty.txt", [("POST", "/bench/empty", None, None)])
    with (
        ApiServer(core.owner_url, data, workers=workers) as server,
        procs.RssSampler(server.pid) as rss,
    ):
        log(f"http: uvicorn with {workers} worker(s) on {server.base}")
        began = time.perf_counter()
        stock = make_orders(server.base, members, stations, orders)
        project(core, ("stations", "orders"))
        took = time.perf_counter() - began
        log(f"http: {orders:,} orders made through the server and projected in {took:.0f} s")
        requests = stock.requests()
        warm = len(members.members) * warm_rounds(workers)
        warm_file = wrk.write_requests(files / "warm.txt", requests[:warm])
        pay_file = wrk.write_requests(files / "pay.txt", requests[warm:])
        wrk.run(wrk_path, server.base, empty_file, connections=CONNECTIONS, seconds=2)
        wrk.run(wrk_path, server.base, warm_file, connections=CONNECTIONS, seconds=warm / WARM_RATE)
        if reads:
            read_latency.sequential(report, server.base, scale.count(2_000, 500))
            endpoints = read_endpoints(core.settings, stock, stations)
            read_latency.run(report, server.base, endpoints, READ_SECONDS)
        empty = measure(wrk_path, server, empty_file, SECONDS)
        pay = measure(wrk_path, server, pay_file, SECONDS)
        rss.sample()
    return empty, pay, rss


def run(report: Report, url: str) -> None:
    wrk_path, why = wrk.ensure_wrk()
    if wrk_path is None:
        log(f"http: SKIPPED ({why})")
        report.skip("http", why)
        return
    data = Path(tempfile.mkdtemp(prefix="ledger-bench-http-"))
    settings = Settings(environment="test", data_dir=data)
    core = build_core(settings, url)
    try:
        began = time.perf_counter()
        stations = nearby.register_stations(core, STATIONS)
        members = make_members(core, settings, scale.count(2_000, 500))
        project(core, ("stations",))
        took = time.perf_counter() - began
        log(f"http: {STATIONS} stations and {len(members.members):,} members in {took:.0f} s")
        first = int(RATE_CAP * SECONDS) + len(members.members)
        empty, pay, rss = serve_and_measure(
            report, wrk_path, core, data, 1, members, stations, first, reads=True
        )
        add_pair(report, "", empty, pay)
        add_rss(report, "", rss)
        # Two workers: each has its own group committer, so batches are half as full.
        second = int(max(RATE_CAP, 2.5 * pay.result.rate) * SECONDS)
        second += len(members.members) * warm_rounds(2)
        empty, pay, rss = serve_and_measure(
            report, wrk_path, core, data, 2, members, stations, second, reads=False
        )
        add_pair(report, ".2_workers", empty, pay)
        add_rss(report, ".2_workers", rss)
    finally:
        core.close()


def add_rss(report: Report, suffix: str, rss: procs.RssSampler) -> None:
    peak, total = rss.peak_process / 1e6, rss.peak_total / 1e6
    report.add(f"http.api_rss_peak{suffix}", round(peak, 1), "MB", tree_total_mb=round(total, 1))
    log(f"  API resident memory{suffix}: peak {peak:.0f} MB a process, {total:.0f} MB in all")

"""HTTP card payments/s through a real uvicorn process, against an empty POST on the same
server in the same run (issue goal: >= 0.45x the empty POST, p99 <= 50 ms at 32 connections).

Orders are created beforehand in-process; the timed requests are `POST /v1/orders/{id}/pay`
with method card, each from its own member token, 32 connections at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import UUID, uuid4

import httpx

from api.auth import MEMBER_SCOPE, issue_access_token
from bench.report import Report
from infra.bootstrap import build_core
from infra.settings import Settings
from ledger.services.station_catalog import StationCatalogService

CONNECTIONS = 32
SRC = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(url: str, settings: Settings, orders: int) -> list[tuple[str, str]]:
    core = build_core(settings, url)
    try:
        catalog = StationCatalogService(core.runner)
        code = f"BENCH-{uuid4().hex[:8]}"
        station = UUID(
            catalog.register(
                code=code,
                name="Bench",
                address="1 Road",
                phone="+8610000000",
                lat_e6=30_600_000,
                lng_e6=104_000_000,
                settlement_rate_bps=100,
            )["station_id"]
        )
        catalog.configure_grade(station, "92#", [1])
        catalog.change_price(station, "92#", 789, "bench", key=code)
        work = []
        for i in range(orders):
            member = uuid4()
            core.wallets.top_up(key=f"{member}", member_id=member, amount=100_000)
            order = core.orders.create(
                member_id=member,
                key=f"o{i}",
                station_id=station,
                grade="92#",
                nozzle=1,
                amount_fen=5_000,
            )
            token, _ = issue_access_token(settings, member, "member", MEMBER_SCOPE)
            work.append((order["order_id"], token))
        return work
    finally:
        core.close()


async def _load(
    base: str, requests: list[tuple[str, dict[str, str], dict]]
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                path, headers, body = queue.get_nowait()
                began = time.perf_counter()
                response = await client.post(path, headers=headers, json=body)
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        took = time.perf_counter() - began
    return len(requests) / took, sorted(latencies), errors


def _p(latencies: list[float], q: float) -> float:
    return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000


def run(report: Report, url: str, orders: int = 3000) -> None:
    data = Path(tempfile.mkdtemp(prefix="ledger-bench-http-"))
    settings = Settings(environment="test", data_dir=data)
    work = _prepare(url, settings, orders)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DATA_DIR": str(data),
        "ENVIRONMENT": "test",
        "PYTHONPATH": os.pathsep.join([str(SRC), str(SRC.parent)]),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.http_app:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        empty = [("/bench/empty", {}, {}) for _ in range(len(work))]
        pays = [
            (f"/v1/orders/{o}/pay", {"Authorization": f"Bearer {t}"}, {"method": "card"})
            for o, t in work
        ]
        asyncio.run(_load(base, empty[:300]))  # warm up both paths
        e_rate, e_lat, e_err = asyncio.run(_load(base, empty))
        p_rate, p_lat, p_err = asyncio.run(_load(base, pays))
    finally:
        server.terminate()
        server.wait(timeout=20)
    report.add(
        "http.empty_post",
        round(e_rate, 1),
        "requests/s",
        p50_ms=round(_p(e_lat, 0.5), 2),
        p99_ms=round(_p(e_lat, 0.99), 2),
        errors=e_err,
        connections=CONNECTIONS,
    )
    report.add(
        "http.card_payment",
        round(p_rate, 1),
        "payments/s",
        p50_ms=round(_p(p_lat, 0.5), 2),
        p99_ms=round(_p(p_lat, 0.99), 2),
        errors=p_err,
        connections=CONNECTIONS,
    )
    report.ratio("http.card_payment_vs_empty_post", "http.card_payment", "http.empty_post")
    print(
        f"http: empty POST {e_rate:,.0f}/s p99 {_p(e_lat, 0.99):.1f} ms; card payment "
        f"{p_rate:,.0f}/s p99 {_p(p_lat, 0.99):.1f} ms ({p_rate / e_rate:.2f}x), errors {p_err}",
        file=sys.stderr,
        flush=True,
    )

"""Read endpoints at a constant 200 requests/s (issue goal: p99 <= 20 ms): a member's
orders, nearby stations, a station's orders for its partner.

wrk2 is not in Debian, so this is an asyncio client that starts request i at t0 + i/rate
whatever the earlier ones are doing (open loop), and times each from that due moment: a
slow answer delays nothing else, and a client that falls behind shows in the figures
rather than hiding them (no coordinated omission). It speaks HTTP/1.1 itself over
keep-alive connections, requests encoded beforehand: a general client (httpx) spends about
a millisecond of CPU a request, which on a busy box is what gets measured."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from bench import procs
from bench.report import Report

RATE = 200.0
GOAL_P99_MS = 20.0
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Get:
    path: str
    params: dict[str, str]
    token: str | None

    def encode(self, host: str) -> bytes:
        target = self.path + (f"?{urlencode(self.params)}" if self.params else "")
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()


@dataclass(frozen=True)
class Paced:
    latencies_ms: list[float]  # from each request's due moment to its answer
    errors: dict[str, int]  # a status other than 200, or the exception, and how many times
    seconds: float  # from the first due moment to the last answer

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Connections:
    """Keep-alive connections to one server, opened as the load needs them."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened: list[asyncio.StreamWriter] = []

    async def get(self, raw: bytes) -> int:
        """The status of one request (its body read and dropped). A kept-alive connection
        the server closed while it sat idle (uvicorn closes them after 5 s) is replaced and
        the request sent again, as an HTTP client does for a GET."""
        stale_possible = bool(self.idle)
        reader, writer = self.idle.pop() if self.idle else await self._open()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError) as e:
            if not stale_possible or getattr(e, "partial", b""):
                raise
            reader, writer = await self._open()
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        self.idle.append((reader, writer))
        return int(head[9:12])

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened.append(writer)
        return reader, writer

    def close(self) -> None:
        for writer in self.opened:
            writer.close()


async def paced(base: str, requests: Sequence[Get], rate: float, seconds: float) -> Paced:
    count = max(1, int(rate * seconds))
    host = urlsplit(base).netloc
    raws = [r.encode(host) for r in requests]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    pool = Connections(base)
    loop = asyncio.get_running_loop()
    for raw in raws[:20]:  # warm: connections, prepared statements, plans
        await pool.get(raw)

    async def one(i: int, due: float) -> None:
        try:
            status = await asyncio.wait_for(pool.get(raws[i % len(raws)]), TIMEOUT_S)
            error = None if status == 200 else str(status)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            error = type(e).__name__
        latencies.append(1000 * (loop.time() - due))
        if error:
            errors[error] += 1

    start = loop.time() + 0.1
    tasks = []
    for i in range(count):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    took = loop.time() - start
    pool.close()
    return Paced(latencies, dict(errors), took)


async def one_by_one(base: str, raw: bytes, count: int) -> list[float]:
    """Milliseconds per request, one request at a time on one keep-alive connection."""
    pool = Connections(base)
    loop = asyncio.get_running_loop()
    for _ in range(50):
        await pool.get(raw)
    latencies = []
    for _ in range(count):
        began = loop.time()
        await pool.get(raw)
        latencies.append(1000 * (loop.time() - began))
    pool.close()
    return latencies


def sequential(report: Report, base: str, count: int) -> None:
    """The floor a sequential client sees: GET /healthz and an empty POST, one at a time."""
    host = urlsplit(base).netloc
    for name, raw in (
        ("healthz", f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        ("empty_post", f"POST /bench/empty HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"),
    ):
        ms = sorted(asyncio.run(one_by_one(base, raw.encode(), count)))
        rate = 1000 * len(ms) / sum(ms)
        p50, p99 = ms[len(ms) // 2], ms[min(len(ms) - 1, int(0.99 * len(ms)))]
        report.add(
            f"http.sequential_{name}", round(rate, 1), "requests/s", p50_ms=round(p50, 3),
            p99_ms=round(p99, 3), requests=len(ms), loadavg_1m=procs.loadavg(),
        )  # fmt: skip
        log(f"  sequential {name}: {rate:,.0f}/s, p50 {p50:.2f} ms p99 {p99:.2f} ms")


def run(report: Report, base: str, endpoints: dict[str, Sequence[Get]], seconds: float) -> None:
    log(f"read endpoints: {RATE:.0f} requests/s for {seconds:.0f} s each, open loop")
    for name, requests in endpoints.items():
        result = asyncio.run(paced(base, requests, RATE, seconds))
        p50, p99 = result.quantile(0.5), result.quantile(0.99)
        report.add(
            f"read.{name}_p99_ms",
            round(p99, 2),
            "ms",
            p50_ms=round(p50, 2),
            p99_ms=round(p99, 2),
            max_ms=round(max(result.latencies_ms), 2),
            requests=len(result.latencies_ms),
            achieved_rps=round(len(result.latencies_ms) / result.seconds, 1),
            rate_rps=RATE,
            errors=result.errors,
            loadavg_1m=procs.loadavg(),
        )
        log(
            f"  read.{name}: p50 {p50:.2f} ms p99 {p99:.2f} ms at "
            f"{len(result.latencies_ms) / result.seconds:.0f}/s, errors {result.errors or 0}"
        )

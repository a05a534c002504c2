"""Projection lag under a steady load (issue goal: p99 <= 100 ms at 1,000 payments/s).

The projection daemon (`python -m projections.daemon`, as `make run` starts it) tails a
database of its own while card payments are driven in-process at a fixed rate: two driver
processes (one Python process tops out near the rate on its own), each a set of threads
that start payment i at t0 + i/rate, so a slow commit does not slow the offered load.

A sampler polls the log head and every projector's tracked position every few
milliseconds. An event's commit time is the first sample that sees the head at or past it;
its applied time, for one projector, the first sample that sees that projector's position
at or past it. Lag = applied - commit, per event, per projector; "all read models" is the
slowest projector for that event. Both times are read by the same clock at the same
resolution, so the figures are good to about one sampling interval.
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg

from bench import ours, procs, scale
from bench.report import Report
from bench.server import child_env
from infra.bootstrap import build_core
from infra.settings import Settings
from projections.registry import all_projectors

RATE = float(os.environ.get("BENCH_LAG_RATE", "1000"))
SECONDS = scale.seconds(20.0, least=6.0)
DRIVERS = 2
THREADS_PER_DRIVER = 48
MEMBERS = 1000
SAMPLE_EVERY_S = 0.005
CATCH_UP_TIMEOUT_S = 120.0
GOAL_P99_MS = 100.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the load ---------------------------------------------------------------------------------


def drive(url: str, members: list[str], rate: float, seconds: float, start_at: float) -> dict:
    """One driver process: `rate` payments/s for `seconds` from wall-clock `start_at`."""
    core = build_core(Settings(environment="test"), url, migrate=False)
    pay = ours.CardPayments(core, [UUID(m) for m in members])
    total = int(rate * seconds)
    done, errors, late = [0], [0], [0.0]
    guard = threading.Lock()

    def worker(k: int) -> None:
        rng = random.Random(k)
        for i in range(k, total, THREADS_PER_DRIVER):
            wait = start_at + i / rate - time.time()
            if wait > 0:
                time.sleep(wait)
            try:
                pay(rng)
                ok = True
            except Exception:  # noqa: BLE001 - counted; the load goes on
                ok = False
            with guard:
                done[0] += ok
                errors[0] += not ok
                late[0] = max(late[0], -wait)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS_PER_DRIVER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished = time.time()
    core.close()
    return {"done": done[0], "errors": errors[0], "finished": finished, "max_late_s": late[0]}


# -- the sampler ------------------------------------------------------------------------------


@dataclass
class Samples:
    times: list[float] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)
    positions: dict[str, list[int]] = field(default_factory=dict)


class Sampler:
    def __init__(self, url: str, names: list[str]) -> None:
        self.url, self.names = url, names
        self.samples = Samples(positions={n: [] for n in names})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        s = self.samples
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                before = time.monotonic()
                head, rows = read_progress(conn)
                s.times.append((before + time.monotonic()) / 2)
                s.heads.append(head)
                for name in self.names:
                    s.positions[name].append(rows.get(name, 0))
                time.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - before)))


def read_progress(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, int]]:
    head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM public.ledger_events")
    rows = conn.execute("SELECT projection, position FROM read.tracking").fetchall()
    return int(head.fetchone()[0]), {name: int(pos) for name, pos in rows}  # type: ignore[index]


def wait_caught_up(url: str, names: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            head, rows = read_progress(conn)
            if all(rows.get(n, -1) >= head for n in names):
                return True
            time.sleep(0.2)
    return False


# -- the figures ------------------------------------------------------------------------------


def lags_ms(samples: Samples, ids: list[int], name: str | None) -> list[float]:
    """Per event id: applied - committed, in ms (None: the slowest projector for it)."""
    t, heads = samples.times, samples.heads
    names = [name] if name else list(samples.positions)
    out = []
    for event in ids:
        seen = bisect.bisect_left(heads, event)
        applied = [bisect.bisect_left(samples.positions[n], event) for n in names]
        if seen >= len(t) or max(applied) >= len(t):
            continue  # not seen by the end of sampling (counted as missing)
        out.append(1000 * max(0.0, t[max(applied)] - t[seen]))
    return out


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def event_ids(url: str, after: int) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT notification_id FROM public.ledger_events WHERE notification_id > %s "
            "ORDER BY notification_id",
            (after,),
        ).fetchall()
    return [int(r[0]) for r in rows]


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Step:
    rate: float
    samples: Samples
    ids: list[int]
    outcome: dict[str, Any]
    catch_up_s: float  # from the last payment to every read model having it (-1: never)
    daemon_per_s: float  # events the daemon applied a second, start to caught up
    daemon_cpu_ms: float  # the daemon's CPU time per event


def run(report: Report, url: str) -> None:
    log(f"projection lag: {RATE:,.0f} card payments/s for {SECONDS:.0f} s, daemon running")
    data = Path(tempfile.mkdtemp(prefix="ledger-bench-lag-"))
    core = build_core(Settings(environment="test", data_dir=data), url)
    try:
        members = [str(m) for m in (uuid4() for _ in range(MEMBERS))]
        ours.fund(core, [UUID(m) for m in members], 10_000_000, threads=16)
    finally:
        core.close()
    names = [p.name for p in all_projectors()]
    daemon = subprocess.Popen(
        [sys.executable, "-m", "projections.daemon"],
        env=child_env(url, data),
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_caught_up(url, names, CATCH_UP_TIMEOUT_S):
            raise RuntimeError("the projection daemon did not catch up with the funding")
        first = step(url, names, members, RATE, daemon.pid)
        if record(report, "projection_lag_p99_ms", first) > GOAL_P99_MS:
            # Missed: how does it do at half the rate (is it the rate, or the daemon)?
            half = step(url, names, members, RATE / 2, daemon.pid)
            record(report, "projection_lag_p99_ms.half_rate", half)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def step(url: str, names: list[str], members: list[str], rate: float, daemon: int) -> Step:
    with psycopg.connect(url) as conn:
        start_head, _ = read_progress(conn)
    cpu = procs.cpu_seconds([daemon])
    with Sampler(url, names) as sampler:
        began = time.monotonic()
        outcome = load(url, members, rate)
        ended = time.monotonic()
        caught_up = wait_caught_up(url, names, CATCH_UP_TIMEOUT_S)
        done = time.monotonic()
        time.sleep(0.05)
    cpu = procs.cpu_seconds([daemon]) - cpu
    ids = event_ids(url, start_head)
    took = done - began - outcome["lead_s"]
    return Step(
        rate=rate,
        samples=sampler.samples,
        ids=ids,
        outcome=outcome,
        catch_up_s=(done - ended) if caught_up else -1.0,
        daemon_per_s=len(ids) / took if took > 0 else 0.0,
        daemon_cpu_ms=1000 * cpu / max(1, len(ids)),
    )


def load(url: str, members: list[str], rate: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    shares = [members[k::DRIVERS] for k in range(DRIVERS)]
    lead = 3.0  # the drivers build their cores meanwhile
    start_at = time.time() + lead
    with ctx.Pool(DRIVERS) as pool:
        results = pool.starmap(
            drive, [(url, share, rate / DRIVERS, SECONDS, start_at) for share in shares]
        )
    done = sum(r["done"] for r in results)
    took = max(r["finished"] for r in results) - start_at
    return {
        "done": done,
        "errors": sum(r["errors"] for r in results),
        "achieved_per_s": done / took,
        "max_late_s": max(r["max_late_s"] for r in results),
        "lead_s": lead,
    }


def record(report: Report, name: str, s: Step) -> float:
    """Adds the row; returns the p99 in ms."""
    every = lags_ms(s.samples, s.ids, None)
    per = {n: lags_ms(s.samples, s.ids, n) for n in s.samples.positions}
    slowest = max(per, key=lambda n: quantile(per[n], 0.99))
    times = s.samples.times
    interval = 1000 * (times[-1] - times[0]) / max(1, len(times) - 1)
    fifth = max(1, len(every) // 5)
    extra = {
        "offered_per_s": s.rate,
        "achieved_per_s": round(s.outcome["achieved_per_s"], 1),
        "payments": s.outcome["done"],
        "errors": s.outcome["errors"],
        "max_late_s": round(s.outcome["max_late_s"], 3),
        "events": len(s.ids),
        "events_missing": len(s.ids) - len(every),
        "first_fifth_p50_ms": round(quantile(every[:fifth], 0.5), 1),
        "last_fifth_p50_ms": round(quantile(every[-fifth:], 0.5), 1),
        "catch_up_after_load_s": round(s.catch_up_s, 2),
        "daemon_events_per_s": round(s.daemon_per_s, 1),
        "daemon_cpu_ms_per_event": round(s.daemon_cpu_ms, 3),
        "sample_interval_ms": round(interval, 2),
        "slowest_projector": slowest,
        "per_projector_p99_ms": {n: round(quantile(v, 0.99), 1) for n, v in per.items()},
        "loadavg_1m": procs.loadavg(),
    }
    p50, p99 = quantile(every, 0.5), quantile(every, 0.99)
    report.add(name, round(p99, 1), "ms", p50_ms=round(p50, 1), **extra)
    log(
        f"  {name}: p50 {p50:.1f} ms p99 {p99:.1f} ms over {len(every):,} events "
        f"(first fifth p50 {extra['first_fifth_p50_ms']} ms, last {extra['last_fifth_p50_ms']}"
        f" ms); {s.outcome['achieved_per_s']:,.0f} payments/s achieved of {s.rate:,.0f} "
        f"offered, errors {s.outcome['errors']}; caught up {s.catch_up_s:.2f} s after the "
        f"load; daemon CPU {s.daemon_cpu_ms:.2f} ms an event; slowest projector {slowest}; "
        f"sampled every {interval:.1f} ms"
    )
    return p99

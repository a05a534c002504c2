"""A closed-loop load driver: N threads run one operation back to back for a fixed time."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

Operation = Callable[[random.Random], None]


@dataclass
class LoadResult:
    threads: int
    seconds: float
    latencies: list[float]  # seconds, of the operations that finished in the window
    errors: Counter[str] = field(default_factory=Counter)
    ops_total: int = 0  # successful operations, warm-up included
    py_cpu_s: float = 0.0  # CPU time of this process in the window
    pg_cpu_s: float | None = None  # CPU time of the database's backends in the window

    @property
    def ops(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ops / self.seconds

    def quantile_ms(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float | int | None]:
        return {
            "threads": self.threads,
            "seconds": round(self.seconds, 2),
            "ops": self.ops,
            "p50_ms": round(self.quantile_ms(0.50), 3),
            "p99_ms": round(self.quantile_ms(0.99), 3),
            "errors": sum(self.errors.values()),
            "py_cpu_cores": round(self.py_cpu_s / self.seconds, 2),
            "pg_cpu_cores": _per_second(self.pg_cpu_s, self.seconds),
        }


def _per_second(value: float | None, seconds: float) -> float | None:
    return None if value is None else round(value / seconds, 2)


def run_load(
    op: Operation,
    *,
    threads: int,
    seconds: float,
    warmup: float = 1.0,
    seed: int | None = None,
    server_cpu: Callable[[], float] | None = None,
) -> LoadResult:
    """Run `op` in `threads` threads; count what finishes in [warmup, warmup + seconds).

    Each thread has its own random.Random; with no seed, every run draws new ones.
    `server_cpu`, if given, returns the server's CPU seconds so far."""
    base = random.SystemRandom().getrandbits(32) if seed is None else seed
    lock = threading.Lock()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    totals = [0]
    start = threading.Barrier(threads + 1)
    t0 = t1 = 0.0

    def worker(index: int) -> None:
        rng = random.Random(base * 1000 + index)
        mine: list[float] = []
        failed: Counter[str] = Counter()
        done = 0
        start.wait()
        while (began := time.perf_counter()) < t1:
            try:
                op(rng)
            except Exception as e:  # noqa: BLE001 - counted and reported, the load goes on
                failed[type(e).__name__] += 1
                continue
            ended = time.perf_counter()
            done += 1
            if began >= t0 and ended < t1:
                mine.append(ended - began)
        with lock:
            latencies.extend(mine)
            errors.update(failed)
            totals[0] += done

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    t0 = time.perf_counter() + warmup
    t1 = t0 + seconds
    start.wait()
    time.sleep(max(0.0, t0 - time.perf_counter()))
    cpu0, pg0 = time.process_time(), server_cpu() if server_cpu else 0.0
    time.sleep(max(0.0, t1 - time.perf_counter()))
    cpu1, pg1 = time.process_time(), server_cpu() if server_cpu else 0.0
    for thread in pool:
        thread.join()
    pg_cpu = pg1 - pg0 if server_cpu else None
    result = LoadResult(threads, seconds, latencies, errors, totals[0], cpu1 - cpu0, pg_cpu)
    if not result.latencies:
        raise RuntimeError(f"no operation succeeded: {dict(errors)}")
    return result

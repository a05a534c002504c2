"""How big a `make bench` run is: BENCH_SCALE multiplies every duration and row count.

`BENCH_SCALE=quick` (what `make bench-quick` sets) is a fifth of the full run, with 100,000
events for the rebuild and audit figures instead of 1,000,000, for iterating on the bench.
"""

from __future__ import annotations

import os

NAMED = {"quick": 0.2, "full": 1.0}


def _parse(raw: str) -> float:
    return NAMED[raw] if raw in NAMED else float(raw)


SCALE = _parse(os.environ.get("BENCH_SCALE", "1").strip().lower() or "1")
QUICK = SCALE < 0.5


def seconds(base: float, least: float = 1.0) -> float:
    return max(least, base * SCALE)


def count(base: int, least: int) -> int:
    return max(least, int(base * SCALE))


def million_events() -> int:
    """Events for the rebuild and audit figures (their env variables still win)."""
    return 100_000 if QUICK else 1_000_000

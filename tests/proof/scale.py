"""How hard the proofs push: PROOF_SCALE=ci (the default: fast and bounded, part of
`make test`) or PROOF_SCALE=full (`make proof`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    name: str
    payments: int  # acknowledged payments under kill -9
    kills: int  # kill -9s of the API, the worker and the projection daemon, in turn
    kill_every_seconds: tuple[float, float]  # a kill lands at a random moment in this window
    fault_payments: int  # payments at least, around a Redis stop or a PostgreSQL restart
    redis_down_seconds: float
    pg_down_seconds: float
    members: int
    load_threads: int
    settle_seconds: float  # after the faults: how long the system may take to catch up


CI = Scale(
    name="ci",
    payments=300,
    kills=3,
    kill_every_seconds=(3.0, 6.0),
    fault_payments=120,
    redis_down_seconds=5.0,
    pg_down_seconds=8.0,
    members=12,
    load_threads=6,
    settle_seconds=150.0,
)
FULL = Scale(
    name="full",
    payments=10_000,
    kills=20,
    kill_every_seconds=(10.0, 30.0),
    fault_payments=2_000,
    redis_down_seconds=60.0,
    pg_down_seconds=20.0,
    members=40,
    load_threads=8,
    settle_seconds=600.0,
)


def current() -> Scale:
    name = os.environ.get("PROOF_SCALE", "ci")
    if name not in ("ci", "full"):
        raise ValueError(f"PROOF_SCALE must be ci or full, not {name!r}")
    return FULL if name == "full" else CI


SCALE = current()


def pick(ci: T, full: T) -> T:
    """A constant of another proof that depends on the scale."""
    return full if SCALE.name == "full" else ci

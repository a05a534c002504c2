"""One deployment for a fault proof: a migrated database with three stations, a Redis and
the stack of processes on them, members signed in over HTTP with funded fuel cards, and a
core in the test process that reads the event store for the checks."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fault_checks import Findings
from fault_load import LoadClient, Running
from harness import RedisServer, Stack, running
from scale import SCALE

from infra.bootstrap import Core, build_core
from infra.settings import Settings
from orders_support import make_station

STATIONS = 3


@dataclass
class World:
    root: Path
    owner_url: str
    stack: Stack
    redis: RedisServer
    load: LoadClient

    def under_load(self, fault: Callable[[Running], None], at_least: int) -> None:
        """Run `fault` while the load pays; stop the load once the fault is over and at least
        `at_least` payments were acknowledged."""
        load = self.load.start(SCALE.load_threads)
        try:
            fault(load)
            while self.load.acknowledged_count() < at_least and not load.failed:
                time.sleep(0.2)
        finally:
            load.stop()

    @contextmanager
    def checker(self) -> Iterator[Core]:
        """A core in the test process, built after the faults (its connections are new)."""
        core = _core(self.root, self.owner_url)
        try:
            yield core
        finally:
            core.close()


def _core(root: Path, owner_url: str) -> Core:
    settings = Settings(environment="test", data_dir=root)
    return build_core(settings, owner_url, group_commit=False, pool_size=2)


@contextmanager
def deployment(root: Path, owner_url: str) -> Iterator[World]:
    setup = _core(root, owner_url)  # migrates
    try:
        stations = [make_station(setup) for _ in range(STATIONS)]
    finally:
        setup.close()
    redis = RedisServer(root / "redis")
    redis.start()
    try:
        with running(Stack(root, owner_url, redis.url)) as stack:
            load = LoadClient(stack.api_url, stack.sim_url, stations)
            load.sign_up(SCALE.members)
            load.fund_cards()
            yield World(root, owner_url, stack, redis, load)
    finally:
        redis.stop()


def wait_a_while(seconds: tuple[float, float], rng: random.Random, stop: Running) -> None:
    """Sleep a random moment from the window; cut short if the load has failed."""
    deadline = time.monotonic() + rng.uniform(*seconds)
    while time.monotonic() < deadline and not stop.failed:
        time.sleep(0.05)


def report(title: str, findings: Findings, extra: dict[str, object], began: float) -> None:
    figures = ", ".join(f"{k} {v}" for k, v in extra.items())
    print(
        f"\n[proof {SCALE.name}] {title}: {findings.figures()}, {figures}, "
        f"seconds {time.monotonic() - began:.0f}",
        flush=True,
    )

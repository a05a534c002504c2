"""kill -9 of the API, the worker and the projection daemon at random moments, while members
pay by card and by WeChat Pay (duplicate notifications included): no acknowledged payment
is lost, none is applied twice, every read model equals a fresh rebuild, the hash chain
verifies and every paid order's station broadcast went out exactly once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from fault_checks import assert_log_consistent, assert_money_kept, money_findings, wait_caught_up
from fault_load import Running
from fault_world import World, deployment, report, wait_a_while
from harness import own_postgres
from scale import SCALE

TARGETS = ("api", "worker", "projections")


def kill_in_turn(world: World, rng: random.Random) -> Callable[[Running], None]:
    """Each target in turn (shuffled), killed at a random moment and started again."""
    names = [TARGETS[i % len(TARGETS)] for i in range(SCALE.kills)]
    rng.shuffle(names)

    def fault(load: Running) -> None:
        for name in names:
            wait_a_while(SCALE.kill_every_seconds, rng, load)
            if load.failed:
                return
            world.stack.kill(name)
            time.sleep(rng.uniform(0.0, 1.0))  # down a moment; the load keeps trying
            world.stack.start(name)

    return fault


@pytest.mark.proof
def test_kill9_loses_nothing_and_applies_nothing_twice(tmp_path) -> None:
    began = time.monotonic()
    with own_postgres() as pg, deployment(tmp_path, pg.url) as world:
        world.under_load(kill_in_turn(world, random.Random(9)), SCALE.payments)
        assert world.stack.died() == {}, "a process died that was not killed"
        resent = world.load.redeliver_failed()
        try:
            settled = wait_caught_up(pg.url, SCALE.settle_seconds)
        except AssertionError:
            print(world.redis.sizes())
            raise
        world.stack.close()  # the log is still from here on
        with world.checker() as core:
            findings = money_findings(core, world.load.tally)
            tally = world.load.tally
            report(
                "kill -9",
                findings,
                {
                    "kills": sum(world.stack.kills.values()),
                    "by process": dict(world.stack.kills),
                    "notifications delivered": tally.deliveries,
                    "redelivered after": resent,
                    "client retries (transport)": tally.transport_errors,
                    "error answers": dict(tally.statuses),
                    "settle seconds": round(settled, 1),
                },
                began,
            )
            assert tally.unexpected == []
            assert_money_kept(findings)
            assert_log_consistent(core)

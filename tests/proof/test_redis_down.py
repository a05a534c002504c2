"""Redis stopped for a while under load: commands keep committing, the side effects wait in
the outbox, and once Redis is back every paid order's station broadcast goes out, once. And a
retry that a worker holds in memory when Redis stops still runs once Redis is back."""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import pytest
import redis as redis_py
from fault_checks import (
    assert_log_consistent,
    assert_money_kept,
    follow_state,
    money_findings,
    wait_caught_up,
)
from fault_load import Running
from fault_world import World, deployment, report, wait_a_while
from harness import SRC, RedisServer, own_postgres, spawn, stop_process, wait_until
from scale import SCALE

from workers.broker import HEARTBEAT_KEY, NAMESPACE, build_broker, close_broker

HEARTBEATS = f"{NAMESPACE}:__heartbeats__"  # dramatiq's: a worker is consuming


def redis_client(server: RedisServer) -> redis_py.Redis:
    return redis_py.Redis.from_url(server.url, socket_connect_timeout=1)


def redis_outage(world: World, seen: dict[str, Any]) -> Callable[[Running], None]:
    def fault(load: Running) -> None:
        wait_a_while((1.0, 3.0), random.Random(6), load)
        acknowledged = world.load.acknowledged_count()
        world.redis.stop()
        down_at, waiting = time.monotonic(), 0
        while time.monotonic() - down_at < SCALE.redis_down_seconds and not load.failed:
            waiting = max(waiting, follow_state(world.owner_url)["unsent"])
            time.sleep(0.5)
        seen["acknowledged while down"] = world.load.acknowledged_count() - acknowledged
        seen["most messages waiting"] = waiting
        world.redis.start()
        seen["redis back at"] = time.monotonic()

    return fault


@pytest.mark.proof
def test_redis_down_loses_no_side_effect(tmp_path) -> None:
    began = time.monotonic()
    seen: dict[str, Any] = {}
    with own_postgres() as pg, deployment(tmp_path, pg.url) as world:
        world.under_load(redis_outage(world, seen), SCALE.fault_payments)
        assert world.stack.died() == {}, "a process died while Redis was down"
        world.load.redeliver_failed()
        try:
            wait_caught_up(pg.url, SCALE.settle_seconds)
        except AssertionError:
            print(world.redis.sizes())
            raise
        drained = time.monotonic() - seen.pop("redis back at")
        state = follow_state(pg.url)
        world.stack.close()
        with world.checker() as core:
            findings = money_findings(core, world.load.tally)
            report(
                f"Redis down {SCALE.redis_down_seconds:.0f} s",
                findings,
                {
                    **seen,
                    "paid orders": state["paid"],
                    "station broadcasts delivered": state["broadcasts"],
                    "all delivered within (s of Redis back)": round(drained, 1),
                    "error answers": dict(world.load.tally.statuses),
                },
                began,
            )
            assert seen["acknowledged while down"] > 0, "no command committed without Redis"
            assert seen["most messages waiting"] > 0, "no side effect waited for Redis"
            assert state["broadcasts"] == state["paid"]
            assert world.load.tally.unexpected == []
            assert_money_kept(findings)
            assert_log_consistent(core)


@pytest.mark.proof
def test_a_retry_a_worker_holds_runs_after_a_redis_restart(tmp_path) -> None:
    """A failed message waits for its retry in the worker's memory (dramatiq's delay queue);
    Redis restarts meanwhile. It must still run once Redis is back."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = {**os.environ, "REDIS_URL": redis.url, "PYTHONPATH": str(SRC)}
    argv = [sys.executable, "-m", "dramatiq", "workers.actors", "--processes", "1"]
    worker = spawn([*argv, "--threads", "2"], tmp_path / "worker.log", env)
    broker, probe = build_broker(redis.url), redis_client(redis)  # both reconnect by themselves
    try:
        wait_until(lambda: probe.exists(HEARTBEATS) > 0, 60, "the worker")
        # the heartbeat's own age limit (60 s) would drop it after a long outage
        later = dramatiq.Message(
            queue_name="default",
            actor_name="heartbeat",
            args=(),
            kwargs={},
            options={"max_age": 3_600_000},
        )
        broker.enqueue(later, delay=4_000)
        time.sleep(1.5)  # the worker has taken it and holds it until its time
        redis.stop()
        stopped = time.monotonic()
        time.sleep(SCALE.redis_down_seconds)
        redis.start()
        wait_until(lambda: probe.get(HEARTBEAT_KEY) is not None, 90, "the retry")
        print(f"\n[proof {SCALE.name}] a held retry ran {time.monotonic() - stopped:.0f} s after "
              "Redis stopped")  # fmt: skip
    finally:
        probe.close()
        close_broker(broker)
        stop_process(worker)
        redis.stop()

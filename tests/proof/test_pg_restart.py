"""PostgreSQL restarted under load: while it is down the API answers 503 problem+json with
code `database_unavailable` (fast, never a 500, never a hang); afterwards everything
recovers on its own and nothing is half-written: the journal balances, every acknowledged
payment is in the event store, the read models equal a rebuild and the chain verifies."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fault_checks import assert_log_consistent, assert_money_kept, money_findings, wait_caught_up
from fault_load import Running, problem_code
from fault_world import World, deployment, report, wait_a_while
from harness import RestartablePostgres, own_postgres
from scale import SCALE

# The read pool gives up after 5 s, the event store after its ten tries of ~1.2 s each
# (infra.db): a command can take ~14 s to fail on a loaded box. Slower is a hang.
SLOW_ANSWER_S = 20.0
RECOVERY_LIMIT_S = 60.0


class Probe:
    """From the moment the database stops until the API serves again, one thread per kind of
    request (a command, a read, /readyz) asks again and again. Each answer is filed under the
    phase it ended in."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.phase = "down"
        self.answers: Counter[str] = Counter()
        self.slowest = 0.0
        self.stopping = threading.Event()
        self.served_again: set[str] = set()
        self.threads = [
            threading.Thread(target=self._run, args=request, daemon=True)
            for request in self._requests()
        ]

    def _requests(self) -> list[tuple[str, str, dict[str, Any]]]:
        api = self.world.stack.api_url
        order = {"station_id": self.world.load.stations[0], "grade": "92#", "nozzle": 1}
        return [
            ("POST", api + "/v1/orders", {"json": {**order, "amount_fen": 1_000}}),
            ("GET", api + "/v1/card", {}),
            ("GET", api + "/readyz", {}),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _run(self, method: str, url: str, kwargs: dict[str, Any]) -> None:
        headers = self.world.load.members[0].headers
        with httpx.Client(timeout=2 * SLOW_ANSWER_S, trust_env=False) as http:
            while not self.stopping.is_set():
                if self._ask(http, headers, method, url, kwargs) and self.phase == "back":
                    self.served_again.add(url)

    def _ask(self, http: httpx.Client, headers: dict[str, str], method: str, url: str,
             kwargs: dict[str, Any]) -> bool:  # fmt: skip
        began = time.monotonic()
        try:
            headers = {**headers, "Idempotency-Key": uuid4().hex}
            answer = http.request(method, url, headers=headers, **kwargs)
            seen, served = f"{answer.status_code} {problem_code(answer)}", answer.is_success
        except httpx.TransportError as exc:
            seen, served = f"no answer ({type(exc).__name__})", False
        self.slowest = max(self.slowest, time.monotonic() - began)
        self.answers[f"{self.phase}: {seen.strip()}"] += 1
        return served

    def wait_recovered(self) -> float:
        """Seconds until every kind of request was served again; then the probe stops."""
        began = time.monotonic()
        while len(self.served_again) < len(self.threads):
            if time.monotonic() - began > RECOVERY_LIMIT_S:
                break
            time.sleep(0.05)
        took = time.monotonic() - began
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        return took


def pg_restart(
    world: World, pg: RestartablePostgres, seen: dict[str, Any]
) -> Callable[[Running], None]:
    def fault(load: Running) -> None:
        wait_a_while((1.0, 3.0), random.Random(5), load)
        before = world.load.acknowledged_count()
        pg.stop()
        probe = Probe(world)
        probe.start()
        time.sleep(SCALE.pg_down_seconds)
        pg.start()
        probe.phase = "back"
        seen["API serving again after (s)"] = round(probe.wait_recovered(), 1)
        seen["probe answers"] = dict(probe.answers)
        seen["slowest answer (s)"] = round(probe.slowest, 1)
        seen["acknowledged before restart"] = before

    return fault


@pytest.mark.proof
def test_pg_restart_answers_503_and_recovers_with_nothing_half_written(tmp_path) -> None:
    began = time.monotonic()
    seen: dict[str, Any] = {}
    with own_postgres() as postgres, deployment(tmp_path, postgres.url) as world:
        world.under_load(pg_restart(world, postgres, seen), SCALE.fault_payments)
        died = world.stack.died()
        print(f"\naround the restart: {seen}", flush=True)
        assert died == {}, f"processes died with the database: {died}"
        after = world.load.acknowledged_count() - seen["acknowledged before restart"]
        restarted = time.monotonic()
        world.load.redeliver_failed()
        wait_caught_up(postgres.url, SCALE.settle_seconds)
        recovered = time.monotonic() - restarted
        world.stack.close()
        with world.checker() as core:
            findings = money_findings(core, world.load.tally)
            report(
                f"PostgreSQL restart ({SCALE.pg_down_seconds:.0f} s down)",
                findings,
                {
                    **seen,
                    "acknowledged after": after,
                    "caught up (s after the load)": round(recovered, 1),
                    "load's error answers": dict(world.load.tally.statuses),
                },
                began,
            )
            answers = seen["probe answers"]
            down = {a for a in answers if a.startswith("down")}
            assert down == {"down: 503 database_unavailable"}, answers
            assert not [a for a in answers if "no answer" in a or " 500" in a], answers
            assert seen["slowest answer (s)"] < SLOW_ANSWER_S
            assert seen["API serving again after (s)"] < RECOVERY_LIMIT_S
            assert world.load.tally.unexpected == []
            assert_money_kept(findings)
            assert_log_consistent(core)

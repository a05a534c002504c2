"""What must hold after a fault, read from the event store itself where it can be.

- lost: an acknowledged payment whose order is not paid in the event store;
- duplicated: an order with more than one payment journal entry, or more than one Paid
  event, or a journal entry id recorded twice;
- the money the provider simulator took equals the money the ledger says came in;
- the read models equal a fresh rebuild and the balances a replay of the log;
- the hash chain verifies over every event;
- each paid order's station broadcast went out exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from fault_load import Tally

from audit.chain import verify
from audit.replay import replay_balances
from infra.bootstrap import Core
from ledger import accounts as acc
from ledger.journal import JournalEntry
from rebuild_support import fresh_rebuild_differences
from support import nonzero, read_balances

PAYMENT_KINDS = ("fuel_card_payment", "fuel_provider_payment")
PAID_STATES = ("paid", "partially_refunded", "refunded")
PAID_TOPIC = "FuelOrder.Paid"


@dataclass
class LogFacts:
    payment_entries: Counter[str] = field(default_factory=Counter)  # order id -> entries
    paid_events: Counter[str] = field(default_factory=Counter)  # order id -> Paid events
    entry_ids: Counter[UUID] = field(default_factory=Counter)
    events: int = 0


def log_facts(core: Core, page: int = 5000) -> LogFacts:
    facts, position = LogFacts(), 0
    while notifications := core.app.recorder.select_notifications(
        start=position, limit=page, inclusive_of_start=False
    ):
        for n in notifications:
            event = core.app.mapper.to_domain_event(n)
            facts.events += 1
            if type(event).__qualname__ == PAID_TOPIC:
                facts.paid_events[str(event.originator_id)] += 1
            entry = getattr(event, "entry", None)
            if isinstance(entry, JournalEntry):
                facts.entry_ids[entry.id] += 1
                if entry.kind in PAYMENT_KINDS:
                    facts.payment_entries[str(entry.memo.get("order_id"))] += 1
        position = notifications[-1].id
    return facts


def order_status(core: Core, order_id: str) -> str:
    return str(core.app.repository.get(UUID(order_id)).status)


@dataclass
class Findings:
    acknowledged: int
    lost: list[str]
    duplicated: list[str]
    unapplied_charges: list[str]
    charged_fen: int
    provider_in_fen: int
    suspense_fen: int
    events: int

    def figures(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)}, events {self.events}"
        )


def money_findings(core: Core, tally: Tally) -> Findings:
    facts = log_facts(core)
    lost = [o for o in tally.acknowledged if order_status(core, o) not in PAID_STATES]
    doubled = [o for o, n in facts.payment_entries.items() if n > 1]
    doubled += [o for o, n in facts.paid_events.items() if n > 1]
    doubled += [f"entry {e}" for e, n in facts.entry_ids.items() if n > 1]
    paid_orders = set(facts.paid_events)
    unpaid_with_entry = set(facts.payment_entries) - paid_orders
    doubled += [f"payment entry for unpaid order {o}" for o in unpaid_with_entry]
    balances = replay_balances(core.app)
    unapplied = [t for t in tally.charged if not _applied(core, t)]
    return Findings(
        acknowledged=len(tally.acknowledged),
        lost=lost,
        duplicated=doubled,
        unapplied_charges=unapplied,
        charged_fen=sum(tally.charged.values()),
        provider_in_fen=-balances.get((acc.PROVIDER_WECHAT, acc.CNY), 0),
        suspense_fen=balances.get((acc.SUSPENSE, acc.CNY), 0),
        events=facts.events,
    )


def _applied(core: Core, out_trade_no: str) -> bool:
    """The fuel order or top-up the simulator charged for is paid in the event store."""
    aggregate = core.app.repository.get(UUID(hex=out_trade_no))
    return str(aggregate.status) in PAID_STATES


def assert_money_kept(findings: Findings) -> None:
    assert findings.lost == [], f"acknowledged payments lost: {findings.lost[:5]}"
    assert findings.duplicated == [], f"applied twice: {findings.duplicated[:5]}"
    assert findings.unapplied_charges == [], f"charged, not paid: {findings.unapplied_charges[:5]}"
    assert findings.provider_in_fen == findings.charged_fen, "provider money != money charged"
    assert findings.suspense_fen == 0, "money parked in suspense"


# -- waiting for the side that follows the log --------------------------------------------


def follow_state(owner_url: str) -> dict[str, Any]:
    with psycopg.connect(owner_url) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731 - four one-liners
        return {
            "head": one("SELECT coalesce(max(notification_id), 0) FROM public.ledger_events"),
            "projected": one("SELECT coalesce(min(position), 0) FROM read.tracking"),
            "sealed": one("SELECT coalesce(max(notification_id), 0) FROM audit.chain"),
            "unsent": one("SELECT count(*) FROM read.outbox WHERE sent_at IS NULL"),
            "paid": one(
                "SELECT count(*) FROM read.fuel_orders WHERE status IN "
                "('paid', 'partially_refunded', 'refunded')"
            ),
            "broadcasts": one("SELECT count(*) FROM read.station_messages"),
        }


def caught_up(state: dict[str, Any]) -> bool:
    head = state["head"]
    return (
        state["projected"] == head == state["sealed"]
        and state["unsent"] == 0
        and state["broadcasts"] == state["paid"]
    )


def wait_caught_up(owner_url: str, timeout: float) -> float:
    """Seconds until the projections, the chain and the broadcasts have caught up."""
    began = time.monotonic()
    state = follow_state(owner_url)
    while not caught_up(state):
        if time.monotonic() - began > timeout:
            stuck = unbroadcast(owner_url)
            raise AssertionError(f"not caught up after {timeout:.0f} s: {state}; {stuck}")
        time.sleep(0.5)
        state = follow_state(owner_url)
    return time.monotonic() - began


def unbroadcast(owner_url: str, limit: int = 10) -> list[tuple[Any, ...]]:
    """Paid orders with no station message yet: their outbox row and their claim."""
    with psycopg.connect(owner_url) as conn:
        return conn.execute(
            "SELECT o.order_id, x.sent_at, s.started_at, s.done_at, now() FROM read.fuel_orders o "
            "LEFT JOIN read.outbox x ON x.payload->>'order_id' = o.order_id::text "
            "LEFT JOIN read.side_effects s ON s.event_id = x.event_id "
            "WHERE o.status IN ('paid', 'partially_refunded', 'refunded') AND NOT EXISTS "
            "(SELECT 1 FROM read.station_messages m WHERE m.order_id = o.order_id) LIMIT %s",
            (limit,),
        ).fetchall()


# -- the checks that need the log to be still ----------------------------------------------


def broadcast_problems(owner_url: str) -> list[str]:
    with psycopg.connect(owner_url) as conn:
        wrong = conn.execute(
            "SELECT o.order_id, count(m.message_id) FROM read.fuel_orders o "
            "LEFT JOIN read.station_messages m ON m.order_id = o.order_id "
            "WHERE o.status IN ('paid', 'partially_refunded', 'refunded') "
            "GROUP BY o.order_id HAVING count(m.message_id) <> 1"
        ).fetchall()
        stray = conn.execute(
            "SELECT m.order_id FROM read.station_messages m LEFT JOIN read.fuel_orders o "
            "ON o.order_id = m.order_id WHERE o.status IS NULL OR o.status NOT IN "
            "('paid', 'partially_refunded', 'refunded')"
        ).fetchall()
    return [f"order {o}: {n} broadcasts" for o, n in wrong] + [
        f"broadcast for unpaid order {o}" for (o,) in stray
    ]


def assert_log_consistent(core: Core) -> None:
    """Read models = a fresh rebuild, balances = a replay, the chain verifies to the head."""
    replayed = replay_balances(core.app)
    for asset in acc.ASSETS:
        assert sum(n for (_, a), n in replayed.items() if a == asset) == 0, asset
    assert nonzero(read_balances(core)) == nonzero(replayed)
    assert fresh_rebuild_differences(core) == {}
    verdict = verify(core.owner_url)
    assert verdict.ok, verdict
    assert verdict.unsealed == 0, verdict
    assert broadcast_problems(core.owner_url) == []

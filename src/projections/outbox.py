"""The outbox: events that ask for a side effect become rows the relay hands to dramatiq.

Each row is keyed by a deterministic id for its event (the originator id and version), so
replaying the log inserts nothing twice, and the actor that runs it can be exactly-once by
that same id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.types.json import Jsonb

from ledger.ids import child
from projections.framework import Envelope, Projector

PAID = "ledger.domain.fuel_order:FuelOrder.Paid"
RECEIVED = "ledger.domain.provider_payment:ProviderPayment.Received"
REFUND_REQUESTED = "ledger.domain.refund:Refund.Requested"
REFUNDED = "ledger.domain.fuel_order:FuelOrder.Refunded"
SUSPENSE_OUTCOMES = ("late", "duplicate")


def event_id(originator_id: UUID, version: int) -> UUID:
    return child(originator_id, f"v{version}")


def side_effect(event: Any) -> tuple[str, dict[str, Any]] | None:
    """The actor and its arguments this event asks for, if any."""
    name = type(event).__qualname__
    if name == "FuelOrder.Paid":
        # The station is filled in from the order's row (the Paid event does not carry it).
        return "station_broadcast", {"order_id": str(event.originator_id), "station_id": None}
    if name == "ProviderPayment.Received" and event.outcome in SUSPENSE_OUTCOMES:
        return "refund_suspense_payment", {"payment_id": str(event.originator_id)}
    if name == "Refund.Requested" and event.provider_fen > 0:
        return "send_provider_refund", {"out_refund_no": event.out_refund_no}
    if name == "FuelOrder.Refunded":  # to the station's webhook, if it has one
        return "station_webhook", {
            "order_id": str(event.originator_id),
            "event_type": "order.refunded",
            "refund_id": str(event.refund_id),
            "refund_fen": sum(event.parts.values()),
            "reason": event.reason,
            "occurred_at": event.timestamp.isoformat(),
        }
    return None


class OutboxProjector(Projector):
    name = "outbox"
    topic_prefixes = (PAID, RECEIVED, REFUND_REQUESTED, REFUNDED)

    def tables(self) -> Sequence[str]:
        # Never emptied by a rebuild: a row records what was (or is to be) sent, and
        # replaying the log over it inserts nothing, since the keys are the events' own.
        return ()

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        rows: list[tuple[UUID, int, str, dict[str, Any], Any]] = []
        for env in envelopes:
            effect = side_effect(env.event)
            if effect is not None:
                e = env.event
                key = event_id(e.originator_id, e.originator_version)
                rows.append((key, env.position, effect[0], effect[1], e.timestamp))
        if not rows:
            return
        self._fill_stations(
            cur, [payload for _, _, actor, payload, _ in rows if actor == "station_broadcast"]
        )
        cur.executemany(
            "INSERT INTO read.outbox (event_id, position, actor, payload, created_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            [(key, pos, actor, Jsonb(payload), at) for key, pos, actor, payload, at in rows],
        )

    @staticmethod
    def _fill_stations(cur: Cursor[Any], payloads: list[dict[str, Any]]) -> None:
        """The orders projection runs before this one, so the order's row is normally there;
        when it is not, the actor takes the station from the order row when it runs."""
        if not payloads:
            return
        found = dict(
            cur.execute(
                "SELECT order_id, station_id FROM read.fuel_orders WHERE order_id = ANY(%s)",
                ([UUID(p["order_id"]) for p in payloads],),
            ).fetchall()
        )
        for payload in payloads:
            station = found.get(UUID(payload["order_id"]))
            payload["station_id"] = str(station) if station else None

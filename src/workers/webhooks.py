"""Station webhooks: a paid order or a refund POSTed as signed JSON to the station's own URL
(webhook_wire: the signature, where a webhook may point, one POST).

A paid order's delivery is queued after its broadcast, a refund's by the outbox (its
FuelOrder.Refunded row); the relay hands both to the `station_webhook` actor. A non-2xx
answer, a timeout or a refused connection is retried by dramatiq with exponential backoff,
up to MAX_ATTEMPTS attempts; once a 2xx has been recorded for an event it is never sent
again (the effect is claimed per event id in read.side_effects). Every attempt lands in
read.webhook_deliveries, which the partner reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg_pool import ConnectionPool

from infra.settings import Settings
from ledger.ids import child
from ledger.money import fen_to_yuan_str
from workers.context import WorkerContext
from workers.effects import NotYetProjected, release, take
from workers.webhook_wire import Attempt, attempt

ACTOR = "station_webhook"
TIME_LIMIT_S = 30  # the actor's time limit: an older unfinished claim is dead
MAX_ATTEMPTS = 10  # the first try and nine retries, 2 s to 8.5 min apart: 17 to 34 min
MIN_BACKOFF_MS, MAX_BACKOFF_MS = 2_000, 10 * 60 * 1_000
PAID, REFUNDED, TEST = "order.paid", "order.refunded", "webhook.test"


class WebhookNotDelivered(Exception):
    """The receiver did not answer 2xx: dramatiq retries the message with backoff."""


# -- the payload and the record of attempts -----------------------------------------------


def payload_bytes(event_id: str, event_type: str, station_id: UUID, at: Any, data: Any) -> bytes:
    body = {
        "id": event_id,
        "type": event_type,
        "created_at": at.isoformat() if isinstance(at, datetime) else at,
        "station_id": str(station_id),
        "data": data,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def record(
    pool: ConnectionPool,
    *,
    event_id: UUID,
    station_id: UUID,
    event_type: str,
    url: str,
    result: Attempt,
) -> int:
    """Append the attempt; returns its number for this event (1 for the first)."""
    with pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO read.webhook_deliveries (event_id, station_id, event_type, attempt, "
            "url, outcome, status_code, error, duration_ms) SELECT %s, %s, %s, "
            "count(*) + 1, %s, %s, %s, %s, %s FROM read.webhook_deliveries WHERE event_id = %s "
            "RETURNING attempt",
            (
                event_id,
                station_id,
                event_type,
                url,
                result.outcome,
                result.status_code,
                result.error,
                result.duration_ms,
                event_id,
            ),
        ).fetchone()
    return int(row[0]) if row else 0


def deliveries(pool: ConnectionPool, station_id: UUID, limit: int) -> list[dict[str, Any]]:
    with pool.connection() as conn:
        cur = conn.execute(
            "SELECT delivery_id, event_id, event_type, attempt, url, outcome, status_code, "
            "error, duration_ms, attempted_at FROM read.webhook_deliveries "
            "WHERE station_id = %s ORDER BY delivery_id DESC LIMIT %s",
            (station_id, limit),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _attempts_so_far(pool: ConnectionPool, event_id: UUID) -> int:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM read.webhook_deliveries WHERE event_id = %s", (event_id,)
        ).fetchone()
    return int(row[0]) if row else 0


# -- the actor's effect ------------------------------------------------------------------------


def queue_after_broadcast(pool: ConnectionPool, broadcast_id: UUID) -> bool:
    """After a paid order's broadcast: an outbox row for the webhook, when the station has
    one. Keyed by the broadcast's event, so however often this runs the relay sends it once,
    and its key is the X-Ledger-Event-Id of every attempt. True when a row was added."""
    with pool.connection() as conn:
        added = conn.execute(
            "INSERT INTO read.outbox (event_id, position, actor, payload) "
            "SELECT %s, coalesce((SELECT position FROM read.outbox WHERE event_id = %s), 0), "
            "%s, jsonb_build_object('order_id', m.order_id::text, 'event_type', %s::text) "
            "FROM read.station_messages m WHERE m.message_id = %s "
            "AND EXISTS (SELECT 1 FROM read.station_webhooks w WHERE w.station_id = m.station_id) "
            "ON CONFLICT (event_id) DO NOTHING",
            (child(broadcast_id, ACTOR), broadcast_id, ACTOR, PAID, broadcast_id),
        ).rowcount
    return added > 0


def station_webhook(
    ctx: WorkerContext,
    *,
    order_id: str,
    event_type: str,
    event_id: str,
    details: dict[str, Any] | None = None,
) -> str:
    """Deliver one order event to its station's webhook; returns what became of it
    (delivered, refused, no_webhook, done, gave_up). Raises WebhookNotDelivered to retry."""
    pool, key = ctx.core.read_pool, UUID(event_id)
    order = _order_with_webhook(pool, UUID(order_id))
    if order["url"] is None:
        return "no_webhook"
    if _attempts_so_far(pool, key) >= MAX_ATTEMPTS:
        return "gave_up"
    if not take(pool, key, ACTOR, TIME_LIMIT_S):  # an attempt in hand elsewhere: retry later
        return "done"
    try:
        at, data = _event_data(event_type, order, details or {})
        body = payload_bytes(event_id, event_type, order["station_id"], at, data)
        result = attempt(ctx.core.settings, order["url"], order["secret_sealed"], event_id, body)
        record(
            pool,
            event_id=key,
            station_id=order["station_id"],
            event_type=event_type,
            url=order["url"],
            result=result,
        )
    except BaseException:
        release(pool, key, ACTOR)
        raise
    if not result.final:
        release(pool, key, ACTOR)
        raise WebhookNotDelivered(f"{order['url']}: {result.outcome} {result.status_code or ''}")
    with pool.connection() as conn:
        conn.execute(
            "UPDATE read.side_effects SET done_at = now() WHERE event_id = %s AND actor = %s",
            (key, ACTOR),
        )
    return result.outcome


_ORDER_FIELDS = (
    "station_id",
    "out_trade_no",
    "grade",
    "nozzle",
    "amount_fen",
    "volume_ml",
    "price_fen_per_litre",
    "method",
    "paid_at",
    "url",
    "secret_sealed",
)


def _order_with_webhook(pool: ConnectionPool, order_id: UUID) -> dict[str, Any]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT o.station_id, o.out_trade_no, o.grade, o.nozzle, o.amount_fen, o.volume_ml, "
            "o.price_fen_per_litre, o.method, o.paid_at, w.url, w.secret_sealed "
            "FROM read.fuel_orders o LEFT JOIN read.station_webhooks w USING (station_id) "
            "WHERE o.order_id = %s",
            (order_id,),
        ).fetchone()
    if row is None:
        raise NotYetProjected(f"order {order_id} is not projected yet")
    return {"order_id": str(order_id), **dict(zip(_ORDER_FIELDS, row, strict=True))}


def _event_data(
    event_type: str, order: dict[str, Any], details: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """What happened, from fields that do not change after it happened (every retry of one
    event sends the same facts)."""
    data = {
        "order_id": order["order_id"],
        "out_trade_no": order["out_trade_no"],
        "grade": order["grade"],
        "nozzle": order["nozzle"],
        "amount_fen": order["amount_fen"],
        "amount_yuan": fen_to_yuan_str(order["amount_fen"]),
        "volume_ml": order["volume_ml"],
        "price_fen_per_litre": order["price_fen_per_litre"],
        "method": order["method"],
        "paid_at": order["paid_at"].isoformat() if order["paid_at"] else None,
    }
    if event_type != REFUNDED:
        return order["paid_at"], data
    refund_fen = int(details.get("refund_fen", 0))
    refund = {
        "refund_id": details.get("refund_id"),
        "refund_fen": refund_fen,
        "refund_yuan": fen_to_yuan_str(refund_fen),
        "reason": details.get("reason", ""),
    }
    return details.get("occurred_at"), {**data, "refund": refund}


# -- a test delivery (the API's POST .../webhook/test) -----------------------------------------


def send_test(
    pool: ConnectionPool, settings: Settings, station_id: UUID, url: str, sealed: str
) -> dict[str, Any]:
    """One signed delivery of a `webhook.test` event, now, without retries; recorded."""
    event_id = uuid4()
    now = datetime.now(UTC)
    body = payload_bytes(str(event_id), TEST, station_id, now, {"message": "It works."})
    result = attempt(settings, url, sealed, str(event_id), body)
    record(pool, event_id=event_id, station_id=station_id, event_type=TEST, url=url, result=result)
    return {
        "event_id": str(event_id),
        "delivered": result.outcome == "delivered",
        "outcome": result.outcome,
        "status_code": result.status_code,
        "error": result.error,
        "duration_ms": result.duration_ms,
    }

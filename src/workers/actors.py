"""The dramatiq actors. Each is a few lines that call application code.

Side effects start from events, never from requests (DESIGN.md section 7): an outbox
projection turns recorded events into dramatiq messages keyed by the event id, so a
redelivered message is a no-op, and while Redis is down the messages wait in the outbox.
Actors for those side effects (station push and voice broadcast, payouts, expiry, commission
release, reconciliation, backups) are added here as their events appear.

Importing this module configures the global broker from REDIS_URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import dramatiq

from workers import back_office, effects, payouts, webhooks
from workers.broker import MINUTE_MS, SECOND_MS, record_heartbeat, setup_broker
from workers.context import get_context
from workers.reconciliation import reconcile_due as reconcile_statements

broker = setup_broker()


@dramatiq.actor(max_retries=0, time_limit=5 * SECOND_MS, max_age=60 * SECOND_MS)
def heartbeat() -> None:
    """Proves a worker is consuming messages; /readyz reads the timestamp it leaves."""
    record_heartbeat(broker.client)


# -- outbox effects: kwargs from the outbox row plus its event_id (= the message id) ---------


@dramatiq.actor(time_limit=effects.BROADCAST_TIME_LIMIT_S * SECOND_MS, max_retries=8)
def station_broadcast(order_id: str, station_id: str | None, event_id: str) -> None:
    ctx = get_context()
    effects.station_broadcast(ctx, order_id=order_id, station_id=station_id, event_id=event_id)
    # Also after a redelivery that found the broadcast done: a crash in between is covered.
    webhooks.queue_after_broadcast(ctx.core.read_pool, UUID(event_id))


@dramatiq.actor(
    time_limit=webhooks.TIME_LIMIT_S * SECOND_MS,
    max_retries=webhooks.MAX_ATTEMPTS - 1,
    min_backoff=webhooks.MIN_BACKOFF_MS,
    max_backoff=webhooks.MAX_BACKOFF_MS,
)
def station_webhook(order_id: str, event_type: str, event_id: str, **details: Any) -> None:
    """A paid order (queued after its broadcast) or a refund (outbox row of
    FuelOrder.Refunded), POSTed to the station's webhook if it has one."""
    webhooks.station_webhook(
        get_context(),
        order_id=order_id,
        event_type=event_type,
        event_id=event_id,
        details=details,
    )


@dramatiq.actor(time_limit=60 * SECOND_MS)
def refund_suspense_payment(payment_id: str, event_id: str) -> None:
    effects.refund_suspense_payment(get_context(), payment_id=payment_id, event_id=event_id)


@dramatiq.actor(time_limit=60 * SECOND_MS)
def send_provider_refund(out_refund_no: str, event_id: str) -> None:
    effects.send_provider_refund(get_context(), out_refund_no=out_refund_no, event_id=event_id)


# -- scheduled sweeps (workers.scheduler, every 30 s): a missed one is redone by the next -----


@dramatiq.actor(max_retries=0, time_limit=5 * MINUTE_MS, max_age=60 * SECOND_MS)
def expire_due(now: str | None = None) -> None:
    effects.expire_due(get_context(), datetime.fromisoformat(now) if now else None)


@dramatiq.actor(max_retries=0, time_limit=5 * MINUTE_MS, max_age=60 * SECOND_MS)
def loyalty_sweep(now: str | None = None) -> None:
    """Commission release, points expiry, unpaid mall orders, quiet payouts."""
    payouts.loyalty_sweep(get_context(), datetime.fromisoformat(now) if now else None)


@dramatiq.actor(time_limit=60 * SECOND_MS, max_retries=20)
def send_payout(withdrawal_id: str, out_bill_no: str, event_id: str) -> None:
    """An approved withdrawal's payout (outbox row of Withdrawal.Approved / Retried)."""
    payouts.send_payout(
        get_context(), withdrawal_id=withdrawal_id, out_bill_no=out_bill_no, event_id=event_id
    )


@dramatiq.actor(max_retries=3, time_limit=6 * 60 * MINUTE_MS, max_age=60 * MINUTE_MS)
def backup_due() -> None:
    """Scheduled: a pg_dump when none is recent enough (BACKUP_EVERY_HOURS)."""
    back_office.backup_due(get_context())


@dramatiq.actor(max_retries=0, time_limit=10 * MINUTE_MS, max_age=60 * SECOND_MS)
def reconcile_due(now: str | None = None) -> None:
    """Scheduled: fetch and import yesterday's provider statements once they are out."""
    reconcile_statements(get_context(), datetime.fromisoformat(now) if now else None)


# -- back-office jobs --------------------------------------------------------------------------


@dramatiq.actor(max_retries=2, time_limit=6 * 60 * MINUTE_MS)
def run_export(export_id: str) -> None:
    """A large export requested in the back office (office.exports)."""
    back_office.run_export(get_context(), export_id)

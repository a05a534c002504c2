"""The side effects behind the actors: plain functions of the worker context.

Every effect is safe to run twice for one event: a broadcast is claimed once per event id
in read.side_effects, and the others are commands keyed by the event's business key (the
payment, the out-refund number, the order) at the provider and in the ledger.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from ledger.errors import DomainError
from ledger.money import fen_to_yuan_str
from providers.amounts import yuan_to_fen
from providers.errors import ProviderError
from workers.context import WorkerContext

log = logging.getLogger("workers.effects")

STATION_BROADCAST = "station_broadcast"
# The actor's time limit, so an unfinished claim older than this is a dead worker's. Above
# the voice call's worst case (providers.transport: 5 s to connect, 10 s to read); at 60 s a
# broadcast whose worker was killed reached its station a minute or more late.
BROADCAST_TIME_LIMIT_S = 20
METHOD_NAMES = {"wechat": "微信", "alipay": "支付宝", "card": "油卡"}
PAID_STATES = ("paid", "partially_refunded", "refunded")
PROVIDER_FINAL = ("SUCCESS", "CLOSED", "ABNORMAL")
EXPIRE_BATCH = 100


class NotYetProjected(Exception):
    """The read model has not caught up with the event yet; dramatiq retries shortly."""


def station_channel(station_id: UUID | str) -> str:
    return f"ledger:station:{station_id}"


# -- station broadcast (M6) -------------------------------------------------------------


def broadcast_text(method: str | None, amount_fen: int, grade: str, nozzle: int) -> str:
    """'微信到账 123.45 元, 92 号 3 号枪'."""
    paid_by = METHOD_NAMES.get(method or "", method or "")
    return f"{paid_by}到账 {fen_to_yuan_str(amount_fen)} 元, {grade.rstrip('#')} 号 {nozzle} 号枪"


def claim(pool: ConnectionPool, event_id: UUID, actor: str, stale_after_s: float) -> bool:
    """Take the effect for this event; False when it is done, or in hand elsewhere."""
    with pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO read.side_effects AS s (event_id, actor) VALUES (%s, %s) "
            "ON CONFLICT (event_id, actor) DO UPDATE SET started_at = now() "
            "WHERE s.done_at IS NULL AND s.started_at < now() - make_interval(secs => %s) "
            "RETURNING 1",
            (event_id, actor, stale_after_s),
        ).fetchone()
    return row is not None


class HeldElsewhere(Exception):
    """An attempt that has not finished holds the effect's claim; dramatiq retries until it
    finishes or its claim goes stale (its worker was killed mid-effect)."""


def take(pool: ConnectionPool, event_id: UUID, actor: str, stale_after_s: float) -> bool:
    """Claim the effect; False when it is done. An unfinished claim held elsewhere raises
    HeldElsewhere: returning would drop the effect for good if that attempt never ends."""
    if claim(pool, event_id, actor, stale_after_s):
        return True
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT done_at IS NOT NULL FROM read.side_effects WHERE event_id = %s AND actor = %s",
            (event_id, actor),
        ).fetchone()
    if row is not None and row[0]:
        return False
    raise HeldElsewhere(f"{actor} for {event_id} is in hand elsewhere")


def release(pool: ConnectionPool, event_id: UUID, actor: str) -> None:
    """Give an unfinished claim back, so the retry of a failed attempt can take it."""
    try:
        with pool.connection() as conn:
            conn.execute(
                "DELETE FROM read.side_effects WHERE event_id = %s AND actor = %s "
                "AND done_at IS NULL",
                (event_id, actor),
            )
    except Exception:  # noqa: BLE001 - the claim then expires after the time limit
        log.exception("could not release the claim on %s/%s", actor, event_id)


def station_broadcast(
    ctx: WorkerContext, *, order_id: str, station_id: str | None, event_id: str
) -> bool:
    """Tell the station an order is paid: a console message with its voice broadcast, once
    per event. Returns False when an earlier delivery already did it."""
    key, pool = UUID(event_id), ctx.core.read_pool
    if not take(pool, key, STATION_BROADCAST, BROADCAST_TIME_LIMIT_S):
        return False
    try:
        order = _paid_order(pool, UUID(order_id))
        # The gross amount: it is what the pump dispenses and what the station sells;
        # coupon and points parts are funded by the platform and settled with the station.
        text = broadcast_text(order["method"], order["amount_fen"], order["grade"], order["nozzle"])
        audio = _speak(ctx, text)
        with pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO read.station_messages (message_id, station_id, order_id, text, "
                "amount_fen, audio, audio_type) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (message_id) DO NOTHING",
                (
                    key,
                    order["station_id"],
                    UUID(order_id),
                    text,
                    order["amount_fen"],
                    audio,
                    "audio/wav" if audio else None,
                ),
            )
            conn.execute(
                "UPDATE read.side_effects SET done_at = now() WHERE event_id = %s AND actor = %s",
                (key, STATION_BROADCAST),
            )
    except BaseException:
        release(pool, key, STATION_BROADCAST)
        raise
    _wake(ctx, order["station_id"], key)
    return True


def _paid_order(pool: ConnectionPool, order_id: UUID) -> dict[str, Any]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT station_id, method, amount_fen, grade, nozzle, status "
            "FROM read.fuel_orders WHERE order_id = %s",
            (order_id,),
        ).fetchone()
    if row is None or row[5] not in PAID_STATES:
        raise NotYetProjected(f"order {order_id} is not projected as paid yet")
    return dict(zip(("station_id", "method", "amount_fen", "grade", "nozzle"), row, strict=False))


def _speak(ctx: WorkerContext, text: str) -> bytes | None:
    """The voice is a courtesy: without it the console still shows the message at once."""
    try:
        return ctx.tts.synthesize(text)
    except ProviderError as exc:
        log.warning("text-to-speech failed, the message goes out silent: %s", exc)
        return None


def _wake(ctx: WorkerContext, station_id: UUID, message_id: UUID) -> None:
    if ctx.redis is None:
        return
    try:
        ctx.redis.publish(station_channel(station_id), str(message_id))
    except Exception as exc:  # noqa: BLE001 - consoles also poll the table
        log.warning("could not wake station %s: %s", station_id, exc)


# -- refunds ----------------------------------------------------------------------------


def refund_suspense_payment(ctx: WorkerContext, *, payment_id: str, event_id: str) -> Any:
    return ctx.core.orders.refund_suspense_payment(payment_id=UUID(payment_id))


def send_provider_refund(ctx: WorkerContext, *, out_refund_no: str, event_id: str) -> str:
    """Ask the provider to refund its part; returns the provider's state for the refund.

    Both providers treat the out-refund number as the refund's identity, so sending it again
    (a retry, a redelivery) refunds nothing twice. Retryable errors raise: dramatiq retries
    with backoff. Other errors are the provider's final word: the refund is ABNORMAL.
    """
    with ctx.core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT provider, provider_fen, provider_total_fen, out_trade_no, reason, "
            "provider_state FROM read.refunds WHERE out_refund_no = %s",
            (out_refund_no,),
        ).fetchone()
    if row is None:
        raise NotYetProjected(f"refund {out_refund_no} is not projected yet")
    provider, refund_fen, total_fen, out_trade_no, reason, state = row
    if state != "pending":
        return str(state)
    try:
        if provider == "wechat":
            answer = ctx.wechat_pay.refund(
                out_trade_no, out_refund_no, refund_fen, total_fen, reason[:80]
            )
            state = str(answer.get("status", "PROCESSING"))
        elif provider == "alipay":
            ctx.alipay.trade_refund(out_trade_no, out_refund_no, refund_fen, reason)
            state = "SUCCESS"  # Alipay refunds synchronously
        else:
            raise ValueError(f"refund {out_refund_no} names no provider ({provider!r})")
    except ProviderError as exc:
        if exc.retryable:
            raise
        return _record(ctx, out_refund_no, "ABNORMAL", exc.code)
    if state in PROVIDER_FINAL:
        return _record(ctx, out_refund_no, state, "")
    return state  # PROCESSING: the provider's REFUND.* notification records the result


def _record(ctx: WorkerContext, out_refund_no: str, state: str, detail: str) -> str:
    ctx.core.orders.record_refund_result(out_refund_no=out_refund_no, state=state, detail=detail)
    return state


# -- expiry -----------------------------------------------------------------------------


def expire_due(
    ctx: WorkerContext, now: datetime | None = None, limit: int = EXPIRE_BATCH
) -> dict[str, int]:
    """Expire unpaid orders and top-ups past their time, at most `limit` of each per run.
    One the provider says was paid after all is confirmed instead; one whose provider order
    is still open is closed there first, so it cannot be paid after it expired."""
    now = now or datetime.now(UTC)
    with ctx.core.read_pool.connection() as conn:
        orders = conn.execute(
            "SELECT order_id, out_trade_no, method FROM read.fuel_orders "
            "WHERE status IN ('created', 'paying') AND expires_at < %s "
            "ORDER BY expires_at LIMIT %s",
            (now, limit),
        ).fetchall()
        top_ups = conn.execute(
            "SELECT top_up_id, out_trade_no, method FROM read.top_ups "
            "WHERE status = 'created' AND expires_at < %s ORDER BY expires_at LIMIT %s",
            (now, limit),
        ).fetchall()
    counts = {"expired": 0, "paid": 0, "skipped": 0}
    for kind, rows in (("order", orders), ("top_up", top_ups)):
        for payable_id, out_trade_no, method in rows:
            outcome = settle_at_provider(ctx, method, out_trade_no)
            if outcome == "open":
                outcome = _expire(ctx, kind, payable_id)
            counts[outcome] += 1
    return counts


def _expire(ctx: WorkerContext, kind: str, payable_id: UUID) -> str:
    try:
        if kind == "order":
            ctx.core.orders.expire(order_id=payable_id)
        else:
            ctx.core.top_ups.expire(top_up_id=payable_id)
    except DomainError as exc:  # paid meanwhile, or not due by the ledger's clock yet
        log.info("%s %s not expired: %s", kind, payable_id, exc)
        return "skipped"
    return "expired"


def settle_at_provider(ctx: WorkerContext, method: str | None, out_trade_no: str) -> str:
    """'paid' (and confirmed), 'open' (nothing can be paid any more) or 'skipped' (ask
    again next run). An order paid by card only (method None) has nothing at a provider."""
    try:
        if method == "wechat":
            return _settle_wechat(ctx, out_trade_no)
        if method == "alipay":
            return _settle_alipay(ctx, out_trade_no)
    except ProviderError as exc:
        log.warning("could not settle %s at %s: %s", out_trade_no, method, exc)
        return "skipped"
    return "open"


def _settle_wechat(ctx: WorkerContext, out_trade_no: str) -> str:
    try:
        trade = ctx.wechat_pay.query_order(out_trade_no)
    except ProviderError as exc:
        if exc.code == "ORDER_NOT_EXIST":  # the member never reached the pay sheet
            return "open"
        raise
    state = trade.get("trade_state")
    if state in ("SUCCESS", "REFUND"):
        ctx.core.orders.confirm_provider_payment(
            provider="wechat",
            transaction_id=str(trade["transaction_id"]),
            out_trade_no=out_trade_no,
            amount_fen=int(trade["amount"]["total"]),
            paid_at=_parse_time(trade.get("success_time")),
        )
        return "paid"
    if state == "NOTPAY":
        ctx.wechat_pay.close_order(out_trade_no)
        return "open"
    return "open" if state in ("CLOSED", "REVOKED", "PAYERROR") else "skipped"


def _settle_alipay(ctx: WorkerContext, out_trade_no: str) -> str:
    try:
        trade = ctx.alipay.trade_query(out_trade_no)
    except ProviderError as exc:
        if exc.code == "ACQ.TRADE_NOT_EXIST":
            return "open"
        raise
    state = trade.get("trade_status")
    if state in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        ctx.core.orders.confirm_provider_payment(
            provider="alipay",
            transaction_id=str(trade["trade_no"]),
            out_trade_no=out_trade_no,
            amount_fen=yuan_to_fen(str(trade["total_amount"])),
        )
        return "paid"
    close = getattr(ctx.alipay, "trade_close", None)
    if state == "WAIT_BUYER_PAY" and close is not None:
        close(out_trade_no)
    return "open" if state in ("WAIT_BUYER_PAY", "TRADE_CLOSED") else "skipped"


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None

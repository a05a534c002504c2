"""Fuel orders, top-ups, refunds and payment exceptions, one row each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from projections.framework import Envelope, Projector

ORDER = "ledger.domain.fuel_order:FuelOrder."
TOP_UP = "ledger.domain.top_up:TopUp."
REFUND = "ledger.domain.refund:Refund."
PAYMENT = "ledger.domain.provider_payment:ProviderPayment."


class OrdersProjector(Projector):
    name = "orders"
    schema_aware = True
    topic_prefixes = (ORDER, TOP_UP, REFUND, PAYMENT)

    def tables(self) -> Sequence[str]:
        return ("read.fuel_orders", "read.top_ups", "read.refunds", "read.payment_exceptions")

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            e = env.event
            handler = getattr(self, "_" + type(e).__qualname__.replace(".", "_"), None)
            if handler is not None:
                handler(cur, e, env.position)

    # -- fuel orders ----------------------------------------------------------------------

    def _FuelOrder_Created(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO fuel_orders (order_id, out_trade_no, member_id, station_id, grade, "
            "nozzle, amount_fen, price_fen_per_litre, volume_ml, coupon_id, coupon_fen, "
            "points_used, points_fen, payable_fen, status, created_at, expires_at, updated_at, "
            "position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "'created', %s, %s, %s, %s) ON CONFLICT (order_id) DO NOTHING",
            (
                e.originator_id,
                e.originator_id.hex,
                e.member_id,
                e.station_id,
                e.grade,
                e.nozzle,
                e.amount_fen,
                e.price_fen_per_litre,
                e.volume_ml,
                e.coupon_id,
                e.coupon_fen,
                e.points_used,
                e.points_fen,
                e.payable_fen,
                e.timestamp,
                e.expires_at,
                e.timestamp,
                pos,
            ),
        )

    def _update_order(self, cur: Cursor[Any], e: Any, pos: int, sets: str, *args: Any) -> None:
        cur.execute(
            f"UPDATE fuel_orders SET {sets}, updated_at = %s, position = %s WHERE order_id = %s",
            (*args, e.timestamp, pos, e.originator_id),
        )

    def _FuelOrder_PaymentStarted(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update_order(cur, e, pos, "status = 'paying', method = %s", e.method)

    def _FuelOrder_Paid(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        card = e.sources.get("card", 0) + e.sources.get("card_bonus", 0)
        self._update_order(
            cur,
            e,
            pos,
            "status = 'paid', method = %s, provider_fen = %s, card_fen = %s, "
            "provider_transaction = %s, paid_at = %s",
            e.method,
            e.sources.get("provider", 0),
            card,
            e.provider_transaction,
            e.paid_at,
        )

    def _FuelOrder_PointsEarned(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update_order(cur, e, pos, "points_earned = points_earned + %s", e.points)

    def _FuelOrder_Expired(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update_order(cur, e, pos, "status = 'expired'")

    def _FuelOrder_Confirmed(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._update_order(cur, e, pos, "confirmed = true")

    def _FuelOrder_Refunded(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        amount = sum(e.parts.values())
        self._update_order(
            cur,
            e,
            pos,
            "refunded_fen = refunded_fen + %s, status = CASE WHEN refunded_fen + %s >= amount_fen "
            "THEN 'refunded' ELSE 'partially_refunded' END",
            amount,
            amount,
        )

    # -- top-ups --------------------------------------------------------------------------

    def _TopUp_Created(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO top_ups (top_up_id, out_trade_no, member_id, method, amount_fen, "
            "bonus_fen, status, created_at, expires_at, position) "
            "VALUES (%s, %s, %s, %s, %s, %s, 'created', %s, %s, %s) "
            "ON CONFLICT (top_up_id) DO NOTHING",
            (
                e.originator_id,
                e.originator_id.hex,
                e.member_id,
                e.method,
                e.amount_fen,
                e.bonus_fen,
                e.timestamp,
                e.expires_at,
                pos,
            ),
        )

    def _TopUp_Paid(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE top_ups SET status = 'paid', provider_transaction = %s, paid_at = %s, "
            "position = %s WHERE top_up_id = %s",
            (e.transaction_id, e.paid_at, pos, e.originator_id),
        )

    def _TopUp_Expired(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE top_ups SET status = 'expired', position = %s WHERE top_up_id = %s",
            (pos, e.originator_id),
        )

    # -- refunds and exceptions -----------------------------------------------------------

    def _Refund_Requested(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO refunds (refund_id, out_refund_no, order_id, payment_id, provider, "
            "provider_fen, provider_total_fen, out_trade_no, amount_fen, reason, requested_by, "
            "provider_state, requested_at, position) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (refund_id) DO NOTHING",
            (
                e.originator_id,
                e.out_refund_no,
                e.order_id,
                e.payment_id,
                e.provider,
                e.provider_fen,
                e.provider_total_fen,
                e.out_trade_no,
                e.amount_fen,
                e.reason,
                e.requested_by,
                "pending" if e.provider_fen > 0 else "none",
                e.timestamp,
                pos,
            ),
        )
        if e.payment_id is not None:
            cur.execute(
                "UPDATE payment_exceptions SET refund_state = 'requested' WHERE payment_id = %s",
                (e.payment_id,),
            )

    def _Refund_ProviderAnswered(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE refunds SET provider_state = %s, answered_at = %s, position = %s "
            "WHERE refund_id = %s",
            (e.state, e.timestamp, pos, e.originator_id),
        )

    def _ProviderPayment_Received(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        if e.outcome == "applied":
            return
        cur.execute(
            "INSERT INTO payment_exceptions (payment_id, provider, transaction_id, "
            "out_trade_no, order_id, amount_fen, outcome, reason, received_at, position) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.provider,
                e.transaction_id,
                e.out_trade_no,
                e.order_id,
                e.amount_fen,
                e.outcome,
                e.reason,
                e.timestamp,
                pos,
            ),
        )

"""Refunds of fuel orders: each source back in proportion to what is left of it, the
provider's answer recorded once, and payments that bought nothing sent back from suspense.

A part of FuelOrderService (it inherits these methods), kept apart to keep one job a file.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ledger import accounts as acc
from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.fuel_order import FuelOrder
from ledger.domain.provider_payment import ProviderPayment
from ledger.domain.refund import Refund
from ledger.domain.wallet import Wallet
from ledger.errors import Forbidden, NotFound
from ledger.ids import child, from_key
from ledger.journal import JournalEntry
from ledger.money import prorate
from ledger.services.order_listeners import OrderListener
from ledger.services.order_views import order_view
from ledger.services.wallets import open_wallet


class OrderRefunds:
    runner: CommandRunner
    listeners: list[OrderListener]

    def _order(self, uow: UnitOfWork, order_id: UUID, member_id: UUID | None = None) -> FuelOrder:
        order = uow.find(FuelOrder, order_id)
        if order is None or (member_id is not None and order.member_id != member_id):
            raise NotFound(f"no order {order_id}")
        return order

    # -- refunds ----------------------------------------------------------------------------

    def refund(
        self,
        *,
        order_id: UUID,
        out_refund_no: str,
        amount_fen: int,
        reason: str,
        requested_by: str,
        station_id: UUID | None = None,
    ) -> dict[str, Any]:
        """Refund part of an order's gross amount, reversing each source in proportion."""
        refund_id = Refund.create_id(out_refund_no)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._order(uow, order_id)
            if station_id is not None and order.station_id != station_id:
                raise Forbidden("not this station's order")
            parts, fees = order.refund_parts(amount_fen)
            wallet = open_wallet(uow, order.member_id)
            m = order.member_id
            income, revenue = acc.station_income(order.station_id), acc.PLATFORM_REVENUE

            def back(source: str, account: str) -> list[tuple[str, str, int]]:
                n, f = parts.get(source, 0), fees.get(source, 0)
                return [(income, acc.CNY, -(n - f)), (revenue, acc.CNY, -f), (account, acc.CNY, n)]

            card_legs = back("card", acc.member_card(m)) + back(
                "card_bonus", acc.member_card_bonus(m)
            )
            points_back = 0
            if parts.get("points"):
                left_fen = order.points_fen - order.refunded.get("points", 0)
                points_back = _prorate(
                    order.points_used - order.points_restored, parts["points"], left_fen
                )
            if points_back:
                card_legs += [
                    (acc.POINTS_ISSUED, acc.PTS, -points_back),
                    (acc.member_points(m), acc.PTS, points_back),
                ]
            if any(n for _, _, n in card_legs):
                wallet.credit(
                    JournalEntry.of(
                        child(refund_id, "wallet"),
                        "fuel_refund_wallet",
                        card_legs,
                        order_id=str(order.id),
                    )
                )
            clawed = self._claw_back_points(order, wallet, parts, refund_id)
            legs = (
                back("provider", acc.provider(order.method or "wechat"))
                if parts.get("provider")
                else []
            )
            legs += back("points", acc.PLATFORM_MARKETING)
            legs += back("coupon", order.coupon_funder or acc.PLATFORM_MARKETING)
            legs = [leg for leg in legs if leg[2]]
            entry = (
                JournalEntry.of(
                    child(refund_id, "order"), "fuel_refund", legs, order_id=str(order.id)
                )
                if legs
                else None
            )
            order.record_refund(refund_id, parts, fees, points_back, clawed, entry, reason)
            for listener in self.listeners:
                listener.on_refunded(uow, order, refund_id, parts)
            provider_fen = parts.get("provider", 0)
            refund = uow.add(
                Refund(
                    out_refund_no=out_refund_no,
                    order_id=order.id,
                    payment_id=None,
                    provider=order.method if provider_fen else None,
                    provider_fen=provider_fen,
                    provider_total_fen=order.sources.get("provider", 0),
                    out_trade_no=order.out_trade_no,
                    amount_fen=amount_fen,
                    reason=reason,
                    requested_by=requested_by,
                )
            )
            return {
                "refund_id": str(refund.id),
                "out_refund_no": out_refund_no,
                "order": order_view(order),
                "parts": parts,
                "provider_fen": provider_fen,
                "provider_state": refund.provider_state,
            }

        payload = ["refund", str(order_id), amount_fen]
        return self.runner.run(from_key("refund-cmd", out_refund_no), payload, decide)

    @staticmethod
    def _claw_back_points(
        order: FuelOrder, wallet: Wallet, parts: dict[str, int], refund_id: UUID
    ) -> int:
        """Earned points go back in proportion to the cash refunded; never below zero (what
        the member already spent stays recorded on the order as unrecovered)."""
        cash = ("provider", "card", "card_bonus")
        refunded_cash = sum(parts.get(s, 0) for s in cash)
        left_cash = sum(order.remaining().get(s, 0) for s in cash)
        if not refunded_cash or not order.points_earned:
            return 0
        due = _prorate(order.points_earned - order.points_clawed, refunded_cash, left_cash)
        take = min(due, wallet.points)
        if take > 0:
            wallet.spend_points(
                child(refund_id, "claw"), take, kind="points_clawed_back", order_id=str(order.id)
            )
        return due

    def record_refund_result(self, *, out_refund_no: str, state: str, detail: str = "") -> dict:
        refund_id = Refund.create_id(out_refund_no)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            refund = uow.find(Refund, refund_id)
            if refund is None:
                raise NotFound(f"no refund {out_refund_no}")
            changed = refund.provider_result(state, detail)
            return {
                "out_refund_no": out_refund_no,
                "provider_state": refund.provider_state,
                "changed": changed,
            }

        return self.runner.run(
            from_key("refund-result", f"{out_refund_no}:{state}"), ["refund-result", state], decide
        )

    def refund_suspense_payment(self, *, payment_id: UUID) -> dict[str, Any]:
        """Send back a payment that bought nothing (late, duplicate): out of suspense."""
        out_refund_no = f"L{payment_id.hex[:31]}"

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            payment = uow.find(ProviderPayment, payment_id)
            if payment is None:
                raise NotFound(f"no payment {payment_id}")
            if not payment.needs_refund:
                return {"out_refund_no": out_refund_no, "state": payment.refund_state}
            payment.refund_requested(out_refund_no)
            uow.add(
                Refund(
                    out_refund_no=out_refund_no,
                    order_id=payment.order_id,
                    payment_id=payment.id,
                    provider=payment.provider,
                    provider_fen=payment.amount_fen,
                    provider_total_fen=payment.amount_fen,
                    out_trade_no=payment.out_trade_no,
                    amount_fen=payment.amount_fen,
                    reason=payment.reason,
                    requested_by="system",
                    entry=JournalEntry.of(
                        child(payment.id, "suspense-refund"),
                        "suspense_refund",
                        [
                            (acc.SUSPENSE, acc.CNY, -payment.amount_fen),
                            (acc.provider(payment.provider), acc.CNY, payment.amount_fen),
                        ],
                    ),
                )
            )
            return {"out_refund_no": out_refund_no, "state": "requested"}

        return self.runner.run(from_key("suspense-refund", str(payment_id)), ["sr"], decide)


def _prorate(total: int, part: int, whole: int) -> int:
    return prorate(total, part, whole) if whole else 0

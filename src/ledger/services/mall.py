"""Points-mall commands (SPEC M13, A1, A5): the catalogue, redemption, fulfilment, cancel.

A redemption is one command: the goods must be on sale, the stock is taken, the points are
spent (points only) or held (points + cash, until WeChat Pay's notification, which reaches
`apply_mall_payment` through FuelOrderService.confirm_provider_payment: a mall order's id is
its out_trade_no, like a fuel order's). Cancelling a paid order gives the points back (to the
lots they came from), refunds the cash through the provider and puts the stock back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger import accounts as acc
from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.mall import (
    DELIVERIES,
    MallGoods,
    MallOrder,
    MallStock,
)
from ledger.domain.refund import Refund
from ledger.domain.wallet import Wallet
from ledger.errors import InvalidAmount, MallOrderNotAllowed, NotFound
from ledger.ids import child, from_key
from ledger.journal import JournalEntry
from ledger.services.mall_catalogue import MallCatalogue
from ledger.services.wallets import open_wallet

MAX_QUANTITY = 99
DueOrders = Callable[[datetime], Sequence[UUID]]


def mall_order_view(order: MallOrder) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "out_trade_no": order.out_trade_no,
        "member_id": str(order.member_id),
        "goods_id": str(order.goods_id),
        "goods_name": order.goods_name,
        "quantity": order.quantity,
        "points": order.points,
        "cash_fen": order.cash_fen,
        "delivery": order.delivery,
        "status": order.status,
        "expires_at": order.expires_at.isoformat(),
    }


def mall_payment_outcome(order: MallOrder, provider: str, amount_fen: int) -> tuple[str, str]:
    if order.status != "awaiting_payment" or provider != "wechat":
        return ("late" if order.status == "expired" else "duplicate"), f"order is {order.status}"
    if amount_fen != order.cash_fen:
        return "amount_mismatch", f"expected {order.cash_fen}, got {amount_fen}"
    return "applied", ""


def apply_mall_payment(
    uow: UnitOfWork, order: MallOrder, provider: str, transaction_id: str, paid_at: datetime
) -> None:
    """The cash part arrived: the held points are spent, the cash is the platform's sale."""
    if order.points:
        open_wallet(uow, order.member_id).post_hold(
            order.points_hold_id,
            child(order.id, "post:points"),
            [(acc.POINTS_ISSUED, order.points)],
            "mall_redemption",
        )
    entry = JournalEntry.of(
        child(order.id, "cash"),
        "mall_cash_payment",
        [
            (acc.provider(provider), acc.CNY, -order.cash_fen),
            (acc.PLATFORM_REVENUE, acc.CNY, order.cash_fen),
        ],
        order_id=str(order.id),
        transaction_id=transaction_id,
    )
    order.mark_paid(transaction_id, paid_at, entry)


class MallService(MallCatalogue):
    def __init__(
        self,
        runner: CommandRunner,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ttl: timedelta = timedelta(minutes=15),
        due_orders: DueOrders = lambda now: (),
    ) -> None:
        self.runner = runner
        self.clock = clock
        self.ttl = ttl
        self.due_orders = due_orders

    # -- redemption (M13) -------------------------------------------------------------------

    def redeem(
        self,
        *,
        member_id: UUID,
        key: str,
        goods_id: UUID,
        quantity: int = 1,
        delivery: str = "pickup",
        address: str = "",
    ) -> dict[str, Any]:
        if not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidAmount(f"quantity must be 1..{MAX_QUANTITY}", quantity=quantity)
        if delivery not in DELIVERIES:
            raise InvalidAmount(f"delivery must be one of {', '.join(DELIVERIES)}")
        if delivery == "ship" and not address.strip():
            raise InvalidAmount("shipping needs an address")
        order_id = MallOrder.create_id(member_id, key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            goods = self._get(uow, MallGoods, goods_id)
            goods.check_on_sale()
            points = goods.points_price * quantity
            cash = goods.cash_price_fen * quantity
            order = uow.add(
                MallOrder(
                    member_id=member_id,
                    order_key=key,
                    goods_id=goods.id,
                    goods_name=goods.name,
                    quantity=quantity,
                    points=points,
                    cash_fen=cash,
                    delivery=delivery,
                    address=address.strip(),
                    expires_at=self.clock() + self.ttl,
                )
            )
            self._get(uow, MallStock, goods.stock_id).take(quantity, order.id)
            if points:
                wallet = open_wallet(uow, member_id)
                if cash:
                    wallet.hold(
                        order.points_hold_id,
                        UUID(hex=order.points_hold_id),
                        acc.member_points(member_id),
                        acc.PTS,
                        points,
                    )
                else:
                    wallet.spend_points(
                        child(order.id, "points"),
                        points,
                        kind="mall_redemption",
                        order_id=str(order.id),
                    )
            return mall_order_view(order)

        payload = ["redeem", str(goods_id), quantity, delivery, address]
        return self.runner.run(child(order_id, "redeem"), payload, decide)

    def expire(self, *, order_id: UUID) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._get(uow, MallOrder, order_id)
            if order.status != "awaiting_payment":
                return mall_order_view(order)
            if self.clock() < order.expires_at:
                raise MallOrderNotAllowed(
                    "the order has not expired yet", order_status=order.status
                )
            order.expire()
            self._release(uow, order)
            return mall_order_view(order)

        return self.runner.run(from_key("mall-expire", str(order_id)), ["expire"], decide)

    def expire_due(self, now: datetime | None = None) -> int:
        expired = 0
        for order_id in self.due_orders(now or self.clock()):
            if self.expire(order_id=order_id)["status"] == "expired":
                expired += 1
        return expired

    def _release(self, uow: UnitOfWork, order: MallOrder) -> None:
        """An unpaid order lets go: the held points and the stock go back."""
        if order.points:
            wallet = uow.get(Wallet, Wallet.create_id(order.member_id))
            wallet.void_hold(order.points_hold_id, child(order.id, "void:points"))
        goods = self._get(uow, MallGoods, order.goods_id)
        self._get(uow, MallStock, goods.stock_id).put_back(order.quantity, order.id)

    # -- fulfilment (A5) --------------------------------------------------------------------

    def ship(self, *, order_id: UUID, by: str, tracking_no: str) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._get(uow, MallOrder, order_id)
            order.ship(by, tracking_no)
            return mall_order_view(order)

        payload = ["ship", tracking_no]
        return self.runner.run(from_key("mall-ship", str(order_id)), payload, decide)

    def pick_up(self, *, order_id: UUID, by: str) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._get(uow, MallOrder, order_id)
            order.pick_up(by)
            return mall_order_view(order)

        return self.runner.run(from_key("mall-pickup", str(order_id)), ["pickup"], decide)

    def cancel(self, *, order_id: UUID, by: str, reason: str) -> dict[str, Any]:
        """An unpaid order lets go at once; a paid one gives everything back."""

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._get(uow, MallOrder, order_id)
            if order.status == "awaiting_payment":
                order.expire()
                self._release(uow, order)
                return mall_order_view(order)
            out_refund_no = f"M{order.id.hex[:31]}" if order.cash_fen else None
            order.cancel(by, reason, out_refund_no)
            if order.points:
                open_wallet(uow, order.member_id).credit(
                    JournalEntry.of(
                        child(order.id, "cancel:points"),
                        "mall_points_returned",
                        [
                            (acc.POINTS_ISSUED, acc.PTS, -order.points),
                            (acc.member_points(order.member_id), acc.PTS, order.points),
                        ],
                        order_id=str(order.id),
                    )
                )
            goods = self._get(uow, MallGoods, order.goods_id)
            self._get(uow, MallStock, goods.stock_id).put_back(order.quantity, order.id)
            if out_refund_no:
                uow.add(self._cash_refund(order, out_refund_no, reason, by))
            return {**mall_order_view(order), "out_refund_no": out_refund_no}

        return self.runner.run(from_key("mall-cancel", str(order_id)), ["cancel"], decide)

    @staticmethod
    def _cash_refund(order: MallOrder, out_refund_no: str, reason: str, by: str) -> Refund:
        provider = "wechat"
        return Refund(
            out_refund_no=out_refund_no,
            order_id=order.id,
            payment_id=None,
            provider=provider,
            provider_fen=order.cash_fen,
            provider_total_fen=order.cash_fen,
            out_trade_no=order.out_trade_no,
            amount_fen=order.cash_fen,
            reason=reason or "mall order cancelled",
            requested_by=by,
            entry=JournalEntry.of(
                child(order.id, "cancel:cash"),
                "mall_cash_refund",
                [
                    (acc.PLATFORM_REVENUE, acc.CNY, -order.cash_fen),
                    (acc.provider(provider), acc.CNY, order.cash_fen),
                ],
                order_id=str(order.id),
            ),
        )

    def needs_cash(self, goods_id: UUID, quantity: int = 1) -> bool:
        """Whether redeeming would ask for a cash part, read before anything is held so a
        member who cannot pay it is refused first."""
        try:
            goods: Any = self.runner.app.repository.get(goods_id)
        except AggregateNotFoundError:
            return False  # redeem itself answers "no such goods"
        return isinstance(goods, MallGoods) and goods.cash_price_fen * quantity > 0

    def order(self, order_id: UUID) -> dict[str, Any]:
        try:
            found: Any = self.runner.app.repository.get(order_id)
        except AggregateNotFoundError:
            found = None
        if not isinstance(found, MallOrder):
            raise NotFound(f"no mall order {order_id}")
        return mall_order_view(found)

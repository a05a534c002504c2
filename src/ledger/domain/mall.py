"""The points mall (SPEC M13, A1, A5): categories, goods, their stock, redemption orders.

Stock is an aggregate of its own per goods item (MallStock), so editing a description never
conflicts with a purchase, and every purchase of one item goes through one version sequence:
two buyers of the last unit collide and the loser is retried on fresh stock, which is then
zero. A redemption order is paid at once when it costs only points; with a cash part, its
points are held and its stock taken until WeChat Pay reports the payment (or it expires).

    paid --ship--> shipped        awaiting_payment --paid--> paid
      \\--pick up--> picked_up                     \\--expire/cancel--> expired / cancelled
      \\--cancel--> cancelled (points back, cash refunded, stock back)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import copying
from ledger.errors import GoodsNotAvailable, InvalidAmount, MallOrderNotAllowed, OutOfStock
from ledger.ids import child, from_key
from ledger.journal import JournalEntry

GOODS_FIELDS = (
    "category_id",
    "name",
    "images",
    "description",
    "points_price",
    "cash_price_fen",
)
DELIVERIES = ("ship", "pickup")


def check_goods(fields: dict[str, Any]) -> dict[str, Any]:
    if "name" in fields and not (isinstance(fields["name"], str) and fields["name"].strip()):
        raise InvalidAmount("goods need a name")
    if "points_price" in fields and (
        not isinstance(fields["points_price"], int) or fields["points_price"] < 0
    ):
        raise InvalidAmount("points price must be a whole number of points")
    if "cash_price_fen" in fields and (
        not isinstance(fields["cash_price_fen"], int) or fields["cash_price_fen"] < 0
    ):
        raise InvalidAmount("cash price must be whole fen")
    if "images" in fields:
        fields["images"] = [str(u) for u in fields["images"]]
    if "category_id" in fields and fields["category_id"] is not None:
        fields["category_id"] = str(fields["category_id"])
    return fields


class MallCategory(Aggregate):
    @staticmethod
    def create_id(key: str) -> UUID:
        return from_key("mall-category", key)

    @event("Created")
    def __init__(self, key: str, name: str, sort: int) -> None:
        self.key = key
        self.name = name
        self.sort = sort
        self.active = True

    def update(self, **changes: Any) -> dict[str, Any]:
        wanted = {k: v for k, v in changes.items() if v is not None and getattr(self, k) != v}
        if wanted:
            self._updated(changes=wanted)
        return wanted

    @event("Updated")
    def _updated(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            setattr(self, name, value)


class MallGoods(Aggregate):
    @staticmethod
    def create_id(key: str) -> UUID:
        return from_key("mall-goods", key)

    @event("Created")
    def __init__(
        self,
        key: str,
        category_id: str | None,
        name: str,
        images: list[str],
        description: str,
        points_price: int,
        cash_price_fen: int,
    ) -> None:
        self.key = key
        self.category_id = category_id
        self.name = name
        self.images = list(images)
        self.description = description
        self.points_price = points_price
        self.cash_price_fen = cash_price_fen
        self.published = False

    def __deepcopy__(self, memo: dict[int, Any]) -> MallGoods:
        clone = copying.clone(self)
        clone.images = list(self.images)
        return clone

    @property
    def stock_id(self) -> UUID:
        return MallStock.create_id(self.id)

    def update(self, **changes: Any) -> dict[str, Any]:
        changes = check_goods({k: v for k, v in changes.items() if v is not None})
        wanted = {k: v for k, v in changes.items() if k in GOODS_FIELDS and getattr(self, k) != v}
        if wanted:
            self._updated(changes=wanted)
        return wanted

    def publish(self) -> None:
        if self.points_price <= 0 and self.cash_price_fen <= 0:
            raise GoodsNotAvailable("goods need a price before they are published")
        if not self.published:
            self._published()

    def withdraw(self) -> None:
        if self.published:
            self._withdrawn()

    def check_on_sale(self) -> None:
        if not self.published:
            raise GoodsNotAvailable("these goods are not on sale", goods_id=str(self.id))

    @event("Updated")
    def _updated(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            setattr(self, name, list(value) if name == "images" else value)

    @event("Published")
    def _published(self) -> None:
        self.published = True

    @event("Withdrawn")
    def _withdrawn(self) -> None:
        self.published = False


class MallStock(Aggregate):
    @staticmethod
    def create_id(goods_id: UUID) -> UUID:
        return child(goods_id, "stock")

    @event("Opened")
    def __init__(self, goods_id: UUID, quantity: int) -> None:
        self.goods_id = goods_id
        self.available = quantity

    def take(self, quantity: int, order_id: UUID) -> None:
        if quantity > self.available:
            raise OutOfStock("not enough stock", available=self.available, wanted=quantity)
        self._taken(quantity=quantity, order_id=order_id)

    def put_back(self, quantity: int, order_id: UUID) -> None:
        self._put_back(quantity=quantity, order_id=order_id)

    def set_to(self, quantity: int) -> None:
        """The admin counted the shelf: `quantity` is what can still be sold."""
        if not isinstance(quantity, int) or quantity < 0:
            raise InvalidAmount("stock must be a whole number, not negative")
        if quantity != self.available:
            self._counted(quantity=quantity, was=self.available)

    @event("Taken")
    def _taken(self, quantity: int, order_id: UUID) -> None:
        self.available -= quantity

    @event("PutBack")
    def _put_back(self, quantity: int, order_id: UUID) -> None:
        self.available += quantity

    @event("Counted")
    def _counted(self, quantity: int, was: int) -> None:
        self.available = quantity


class MallOrder(Aggregate):
    @staticmethod
    def create_id(member_id: UUID, order_key: str) -> UUID:
        return from_key("mall-order", f"{member_id}:{order_key}")

    @event("Created")
    def __init__(
        self,
        member_id: UUID,
        order_key: str,
        goods_id: UUID,
        goods_name: str,
        quantity: int,
        points: int,
        cash_fen: int,
        delivery: str,
        address: str,
        expires_at: datetime,
    ) -> None:
        self.member_id = member_id
        self.order_key = order_key
        self.goods_id = goods_id
        self.goods_name = goods_name
        self.quantity = quantity
        self.points = points
        self.cash_fen = cash_fen
        self.delivery = delivery
        self.address = address
        self.expires_at = expires_at
        self.status = "paid" if cash_fen == 0 else "awaiting_payment"
        self.provider_transaction: str | None = None

    @property
    def out_trade_no(self) -> str:
        return self.id.hex

    @property
    def points_hold_id(self) -> str:
        # The name points_lots.hold_ref expects, so a refund finds the lots it came from.
        return child(self.id, "hold:points").hex

    def _require(self, *states: str) -> None:
        if self.status not in states:
            raise MallOrderNotAllowed(f"the mall order is {self.status}", order_status=self.status)

    def mark_paid(self, transaction_id: str, paid_at: datetime, entry: JournalEntry) -> None:
        self._require("awaiting_payment")
        self._paid(transaction_id=transaction_id, paid_at=paid_at, entry=entry)

    def expire(self) -> None:
        self._require("awaiting_payment")
        self._expired()

    def ship(self, by: str, tracking_no: str) -> None:
        self._require("paid")
        if self.delivery != "ship":
            raise MallOrderNotAllowed(
                "this order is picked up, not shipped", order_status=self.status
            )
        self._shipped(by=by, tracking_no=tracking_no)

    def pick_up(self, by: str) -> None:
        self._require("paid")
        if self.delivery != "pickup":
            raise MallOrderNotAllowed(
                "this order is shipped, not picked up", order_status=self.status
            )
        self._picked_up(by=by)

    def cancel(self, by: str, reason: str, out_refund_no: str | None) -> None:
        self._require("paid")
        self._cancelled(by=by, reason=reason, out_refund_no=out_refund_no)

    @event("Paid")
    def _paid(self, transaction_id: str, paid_at: datetime, entry: JournalEntry) -> None:
        self.status = "paid"
        self.provider_transaction = transaction_id

    @event("Expired")
    def _expired(self) -> None:
        self.status = "expired"

    @event("Shipped")
    def _shipped(self, by: str, tracking_no: str) -> None:
        self.status = "shipped"

    @event("PickedUp")
    def _picked_up(self, by: str) -> None:
        self.status = "picked_up"

    @event("Cancelled")
    def _cancelled(self, by: str, reason: str, out_refund_no: str | None) -> None:
        self.status = "cancelled"

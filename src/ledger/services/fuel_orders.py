"""Fuel orders: quote, create with the price locked, pay (card, provider, mixed), expire,
refund. Each method is one command: one atomic save of every aggregate it changed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from ledger import accounts as acc
from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.fuel_order import PROVIDER_METHODS, FuelOrder
from ledger.domain.mall import MallOrder
from ledger.domain.provider_payment import ProviderPayment
from ledger.domain.station import Station
from ledger.domain.top_up import TopUp
from ledger.domain.wallet import Wallet
from ledger.errors import Forbidden, InvalidAmount, NotFound, OrderNotPayable
from ledger.ids import child, from_key
from ledger.journal import JournalEntry
from ledger.loyalty import PointsRules
from ledger.pricing import CouponOffer, Quote, quote
from ledger.services.mall import apply_mall_payment, mall_payment_outcome
from ledger.services.order_listeners import OrderListener
from ledger.services.order_refunds import OrderRefunds
from ledger.services.order_views import order_view
from ledger.services.top_ups import apply_top_up_payment
from ledger.services.wallets import open_wallet

OffersFn = Callable[[UnitOfWork, UUID, UUID, str, int], Sequence[CouponOffer]]
ORDER_TTL = timedelta(minutes=15)


def no_offers(uow: UnitOfWork, member_id: UUID, station_id: UUID, grade: str, amount: int):
    return ()


def utcnow() -> datetime:
    return datetime.now(UTC)


class FuelOrderService(OrderRefunds):
    def __init__(
        self,
        runner: CommandRunner,
        *,
        rules: PointsRules | None = None,
        offers: OffersFn = no_offers,
        clock: Callable[[], datetime] = utcnow,
        ttl: timedelta = ORDER_TTL,
        listeners: Sequence[OrderListener] = (),
    ) -> None:
        self.runner = runner
        self.listeners = list(listeners)
        self.rules = rules or PointsRules()
        self.offers = offers
        self.clock = clock
        self.ttl = ttl

    # -- quote and create -------------------------------------------------------------------

    def _quote(
        self,
        uow: UnitOfWork,
        member_id: UUID,
        station_id: UUID,
        grade: str,
        nozzle: int,
        amount_fen: int,
        coupon_id: str | None,
        points: int,
    ) -> tuple[Station, Quote]:
        station = uow.find(Station, station_id)
        if station is None:
            raise NotFound(f"no station {station_id}")
        if not station.is_open:
            raise OrderNotPayable("the station is closed", status="station_closed")
        price = station.price_of(grade)
        station.check_nozzle(grade, nozzle)
        wallet = uow.find(Wallet, Wallet.create_id(member_id))
        balance = wallet.points if wallet else 0
        offers = self.offers(uow, member_id, station_id, grade, amount_fen)
        q = quote(
            amount_fen=amount_fen,
            price_fen_per_litre=price,
            offers=offers,
            coupon_id=coupon_id,
            points_requested=points,
            points_balance=balance,
            rules=self.rules.for_sale(station_id=station_id, grade=grade, at=self.clock()),
        )
        return station, q

    def quote(
        self,
        *,
        member_id: UUID,
        station_id: UUID,
        grade: str,
        nozzle: int,
        amount_fen: int,
        coupon_id: str | None = None,
        points: int = 0,
    ) -> dict[str, Any]:
        uow = UnitOfWork(self.runner.app, self.runner.locks, locking=False)
        try:
            _, q = self._quote(
                uow, member_id, station_id, grade, nozzle, amount_fen, coupon_id, points
            )
        finally:
            uow.release()
        return q.to_dict()

    def create(
        self,
        *,
        member_id: UUID,
        key: str,
        station_id: UUID,
        grade: str,
        nozzle: int,
        amount_fen: int,
        coupon_id: str | None = None,
        points: int = 0,
    ) -> dict[str, Any]:
        command_id = from_key("create-order", f"{member_id}:{key}")
        payload = ["create", str(station_id), grade, nozzle, amount_fen, coupon_id, points]

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            station, q = self._quote(
                uow, member_id, station_id, grade, nozzle, amount_fen, coupon_id, points
            )
            order = uow.add(
                FuelOrder(
                    member_id=member_id,
                    order_key=key,
                    station_id=station_id,
                    grade=grade,
                    nozzle=nozzle,
                    amount_fen=amount_fen,
                    price_fen_per_litre=q.price_fen_per_litre,
                    volume_ml=q.volume_ml,
                    settlement_rate_bps=station.settlement_rate_bps,
                    coupon_id=q.coupon.coupon_id if q.coupon else None,
                    coupon_fen=q.coupon_fen,
                    coupon_funder=q.coupon.funder_account if q.coupon else None,
                    points_used=q.points_used,
                    points_fen=q.points_fen,
                    payable_fen=q.payable_fen,
                    points_to_earn=q.points_to_earn,
                    expires_at=self.clock() + self.ttl,
                )
            )
            for listener in self.listeners:
                listener.on_created(uow, order)
            return order_view(order)

        return self.runner.run(command_id, payload, decide)

    # -- paying -----------------------------------------------------------------------------

    def _sale_destinations(self, order: FuelOrder, amount: int, fee: int) -> list[tuple[str, int]]:
        return [(acc.station_income(order.station_id), amount - fee), (acc.PLATFORM_REVENUE, fee)]

    def _marketing_legs(self, order: FuelOrder, fees: dict[str, int]) -> list[tuple[str, str, int]]:
        legs: list[tuple[str, str, int]] = []
        for source, account in (
            ("points", acc.PLATFORM_MARKETING),
            ("coupon", order.coupon_funder or acc.PLATFORM_MARKETING),
        ):
            amount = order.points_fen if source == "points" else order.coupon_fen
            if amount:
                legs += [(account, acc.CNY, -amount)]
                legs += [
                    (d, acc.CNY, n) for d, n in self._sale_destinations(order, amount, fees[source])
                ]
        return legs

    def _earn(self, uow: UnitOfWork, order: FuelOrder, wallet: Wallet) -> None:
        if order.points_to_earn > 0:
            wallet.earn_points(
                child(order.id, "earn"),
                order.points_to_earn,
                order_id=str(order.id),
                expires_on=self.rules.lot_expiry(order.paid_at or self.clock()).isoformat(),
            )
            order.record_points_earned(order.points_to_earn)

    def pay_with_card(self, *, order_id: UUID, member_id: UUID) -> dict[str, Any]:
        command_id = from_key("pay-card", str(order_id))

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._order(uow, order_id, member_id)
            order.check_payable(self.clock())
            if order.status == "paying":
                raise OrderNotPayable("a provider payment is in progress", status=order.status)
            wallet = open_wallet(uow, member_id)
            from_card, from_bonus = wallet.card_split(order.payable_fen)
            sources = {
                "card": from_card,
                "card_bonus": from_bonus,
                "points": order.points_fen,
                "coupon": order.coupon_fen,
            }
            fees = order.split_fees(sources)
            card_fee = fees.get("card", 0) + fees.get("card_bonus", 0)
            if order.payable_fen:
                wallet.pay_with_card(
                    child(order.id, "card"),
                    order.payable_fen,
                    self._sale_destinations(order, order.payable_fen, card_fee),
                    kind="fuel_card_payment",
                    order_id=str(order.id),
                )
            if order.points_used:
                wallet.spend_points(
                    child(order.id, "points"),
                    order.points_used,
                    kind="points_for_fuel",
                    order_id=str(order.id),
                )
            legs = self._marketing_legs(order, fees)
            entry = (
                JournalEntry.of(
                    child(order.id, "sale"), "fuel_discounts", legs, order_id=str(order.id)
                )
                if legs
                else None
            )
            order.mark_paid("card", sources, entry, None, self.clock())
            self._earn(uow, order, wallet)
            for listener in self.listeners:
                listener.on_paid(uow, order)
            return order_view(order)

        return self.runner.run(command_id, ["pay-card", str(order_id)], decide)

    def start_provider_payment(
        self, *, order_id: UUID, member_id: UUID, method: str, card_fen: int = 0
    ) -> dict[str, Any]:
        """Reserve the card and points parts (two-phase holds) and open the provider part;
        the caller then asks the provider for prepay parameters with `out_trade_no`."""
        if method not in PROVIDER_METHODS:
            raise InvalidAmount(f"unknown method {method!r}", method=method)
        command_id = from_key("pay-start", f"{order_id}:{method}:{card_fen}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._order(uow, order_id, member_id)
            order.check_payable(self.clock())
            if not 0 <= card_fen < order.payable_fen:
                raise InvalidAmount("card part must leave something to pay", card_fen=card_fen)
            wallet = open_wallet(uow, member_id)
            holds: dict[str, str] = {}
            cash, bonus = wallet.card_split(card_fen) if card_fen else (0, 0)
            for name, account, asset, amount in (
                ("card", acc.member_card(member_id), acc.CNY, cash),
                ("card_bonus", acc.member_card_bonus(member_id), acc.CNY, bonus),
                ("points", acc.member_points(member_id), acc.PTS, order.points_used),
            ):
                if amount:
                    hold_id = child(order.id, f"hold:{name}").hex
                    wallet.hold(hold_id, UUID(hex=hold_id), account, asset, amount)
                    holds[name] = hold_id
            order.start_provider_payment(method, cash, bonus, holds, self.clock())
            return {**order_view(order), "provider_fen": order.pending["provider_fen"]}

        return self.runner.run(command_id, ["pay-start", str(order_id), method, card_fen], decide)

    def confirm_provider_payment(
        self,
        *,
        provider: str,
        transaction_id: str,
        out_trade_no: str,
        amount_fen: int,
        paid_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Apply a provider's payment report exactly once (keyed by its transaction id)."""
        payment_id = ProviderPayment.create_id(provider, transaction_id)
        paid_at = paid_at or self.clock()

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            existing = uow.find(ProviderPayment, payment_id)
            if existing is not None:
                return {
                    "payment_id": str(payment_id),
                    "outcome": existing.outcome,
                    "order_id": str(existing.order_id) if existing.order_id else None,
                }
            order = _payable_by_trade_no(uow, out_trade_no)
            outcome, reason = "applied", ""
            if order is None:
                outcome, reason = "unknown_order", "no order with that out_trade_no"
            elif isinstance(order, TopUp):
                outcome, reason = _top_up_outcome(order, provider, amount_fen)
                if outcome == "applied":
                    apply_top_up_payment(uow, order, provider, transaction_id, paid_at)
            elif isinstance(order, MallOrder):
                outcome, reason = mall_payment_outcome(order, provider, amount_fen)
                if outcome == "applied":
                    apply_mall_payment(uow, order, provider, transaction_id, paid_at)
            elif order.status != "paying" or order.method != provider:
                outcome = "late" if order.status in ("expired", "created") else "duplicate"
                reason = f"order is {order.status}"
            elif amount_fen != order.pending["provider_fen"]:
                outcome = "amount_mismatch"
                reason = f"expected {order.pending['provider_fen']}, got {amount_fen}"
            entry = None
            if outcome != "applied":
                # The money arrived but buys nothing: park it until it is refunded.
                entry = JournalEntry.of(
                    child(payment_id, "suspense"),
                    "provider_payment_suspense",
                    [
                        (acc.provider(provider), acc.CNY, -amount_fen),
                        (acc.SUSPENSE, acc.CNY, amount_fen),
                    ],
                    transaction_id=transaction_id,
                )
            elif isinstance(order, FuelOrder):
                self._apply_provider_payment(uow, order, provider, transaction_id, paid_at)
            uow.add(
                ProviderPayment(
                    provider=provider,
                    transaction_id=transaction_id,
                    out_trade_no=out_trade_no,
                    order_id=order.id if order else None,
                    amount_fen=amount_fen,
                    outcome=outcome,
                    reason=reason,
                    entry=entry,
                    paid_at=paid_at,
                )
            )
            return {
                "payment_id": str(payment_id),
                "outcome": outcome,
                "order_id": str(order.id) if order else None,
            }

        payload = ["confirm", provider, transaction_id, out_trade_no, amount_fen]
        return self.runner.run(from_key("provider-payment", str(payment_id)), payload, decide)

    def _apply_provider_payment(
        self,
        uow: UnitOfWork,
        order: FuelOrder,
        provider: str,
        transaction_id: str,
        paid_at: datetime,
    ) -> None:
        wallet = open_wallet(uow, order.member_id)
        pending = order.pending
        sources = {
            "provider": pending["provider_fen"],
            "card": pending["card_fen"],
            "card_bonus": pending["bonus_fen"],
            "points": order.points_fen,
            "coupon": order.coupon_fen,
        }
        fees = order.split_fees(sources)
        holds = pending["holds"]
        for name in ("card", "card_bonus"):
            if name in holds:
                amount = sources[name]
                wallet.post_hold(
                    holds[name],
                    child(order.id, f"post:{name}"),
                    self._sale_destinations(order, amount, fees[name]),
                    "fuel_card_payment",
                )
        if "points" in holds:
            wallet.post_hold(
                holds["points"],
                child(order.id, "post:points"),
                [(acc.POINTS_ISSUED, order.points_used)],
                "points_for_fuel",
            )
        legs = [(acc.provider(provider), acc.CNY, -sources["provider"])]
        legs += [
            (d, acc.CNY, n)
            for d, n in self._sale_destinations(order, sources["provider"], fees["provider"])
        ]
        legs += self._marketing_legs(order, fees)
        entry = JournalEntry.of(
            child(order.id, "sale"),
            "fuel_provider_payment",
            legs,
            order_id=str(order.id),
            transaction_id=transaction_id,
        )
        order.mark_paid(provider, sources, entry, transaction_id, paid_at)
        self._earn(uow, order, wallet)
        for listener in self.listeners:
            listener.on_paid(uow, order)

    def expire(self, *, order_id: UUID) -> dict[str, Any]:
        command_id = from_key("expire", str(order_id))

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._order(uow, order_id)
            if self.clock() < order.expires_at:
                raise OrderNotPayable("order has not expired yet", status=order.status)
            holds = order.expire()
            if holds:
                wallet = open_wallet(uow, order.member_id)
                for name, hold_id in holds.items():
                    wallet.void_hold(hold_id, child(order.id, f"void:{name}"))
            for listener in self.listeners:
                listener.on_expired(uow, order)
            return order_view(order)

        return self.runner.run(command_id, ["expire", str(order_id)], decide)

    def confirm(self, *, order_id: UUID, station_id: UUID) -> dict[str, Any]:
        """The station confirms the fuel was dispensed (P6)."""

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            order = self._order(uow, order_id)
            if order.station_id != station_id:
                raise Forbidden("not this station's order")
            order.confirm()
            return order_view(order)

        return self.runner.run(from_key("confirm", f"{order_id}:{station_id}"), ["confirm"], decide)


def _top_up_outcome(top_up: TopUp, provider: str, amount_fen: int) -> tuple[str, str]:
    if top_up.status != "created" or top_up.method != provider:
        return ("late" if top_up.status == "expired" else "duplicate"), f"top-up is {top_up.status}"
    if amount_fen != top_up.amount_fen:
        return "amount_mismatch", f"expected {top_up.amount_fen}, got {amount_fen}"
    return "applied", ""


def _payable_by_trade_no(
    uow: UnitOfWork, out_trade_no: str
) -> FuelOrder | TopUp | MallOrder | None:
    """Fuel orders, top-ups and mall orders use their id as the provider's out_trade_no."""
    try:
        payable_id = UUID(hex=out_trade_no)
    except ValueError:
        return None
    try:
        found = uow.get(Aggregate, payable_id)
    except AggregateNotFoundError:
        return None
    return found if isinstance(found, (FuelOrder, TopUp, MallOrder)) else None

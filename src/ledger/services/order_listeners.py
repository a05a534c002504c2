"""What other bounded contexts do when an order changes, inside the same command.

Coupons lock, redeem, release and restore; distribution earns and claws back commission.
They plug in here, so a payment and its coupon redemption and its commission are one atomic
save, and the order code does not know about either.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from ledger.commands import UnitOfWork
from ledger.domain.fuel_order import FuelOrder


class OrderListener(Protocol):
    def on_created(self, uow: UnitOfWork, order: FuelOrder) -> None: ...

    def on_paid(self, uow: UnitOfWork, order: FuelOrder) -> None: ...

    def on_expired(self, uow: UnitOfWork, order: FuelOrder) -> None: ...

    def on_refunded(
        self, uow: UnitOfWork, order: FuelOrder, refund_id: UUID, parts: dict[str, int]
    ) -> None: ...


class NoListener:
    """Does nothing: every hook is optional to implement."""

    def on_created(self, uow: UnitOfWork, order: FuelOrder) -> None:
        pass

    def on_paid(self, uow: UnitOfWork, order: FuelOrder) -> None:
        pass

    def on_expired(self, uow: UnitOfWork, order: FuelOrder) -> None:
        pass

    def on_refunded(
        self, uow: UnitOfWork, order: FuelOrder, refund_id: UUID, parts: dict[str, int]
    ) -> None:
        pass

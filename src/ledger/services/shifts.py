"""Shift settlement (P9): open a cashier shift, close it with the counted totals; closing
applies the station's settlement batch in the same atomic save.

The system's totals come from the read models through `ShiftReadings` (implemented in
projections.shifts): this package reads no SQL of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.shift import Shift, ShiftStateError
from ledger.domain.station import Station
from ledger.domain.station_account import StationAccount
from ledger.errors import NotFound
from ledger.ids import child, from_key
from ledger.services.fuel_orders import utcnow

MAX_WALK = 1000


class ShiftReadings(Protocol):
    def latest_number(self, station_id: UUID) -> int:
        """The highest shift number the read model knows for the station (0: none)."""

    def totals(self, station_id: UUID, since: datetime, until: datetime) -> dict[str, Any]:
        """{"system_fen": {method: fen}, "order_count", "refund_count", "refunds_fen"}."""

    def unsettled_income(self, station_id: UUID, after_position: int) -> tuple[int, int]:
        """(income earned after `after_position`, the journal position it is counted to)."""


def shift_view(shift: Shift) -> dict[str, Any]:
    return {
        "shift_id": str(shift.id),
        "station_id": str(shift.station_id),
        "number": shift.number,
        "cashier": shift.cashier,
        "status": shift.status,
        "opened_at": shift.opened_at.isoformat(),
        "closed_at": shift.closed_at.isoformat() if shift.closed_at else None,
        "system_fen": dict(shift.system_fen),
        "counted_fen": dict(shift.counted_fen),
        "difference_fen": dict(shift.difference_fen),
        "order_count": shift.order_count,
        "refund_count": shift.refund_count,
        "refunds_fen": shift.refunds_fen,
        "settled_fen": shift.settled_fen,
        "up_to_position": shift.up_to_position,
    }


class ShiftService:
    def __init__(
        self,
        runner: CommandRunner,
        readings: ShiftReadings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.runner = runner
        self.readings = readings
        self.clock = clock

    def open(self, *, station_id: UUID, cashier: str, opened_by: str, key: str) -> dict[str, Any]:
        """Open the station's next shift; 409 while the previous one is still open."""
        command_id = from_key("shift-open", f"{station_id}:{key}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            if uow.find(Station, station_id) is None:
                raise NotFound(f"no station {station_id}")
            last = self._last_shift(uow, station_id)
            if last is not None and last.is_open:
                raise ShiftStateError(
                    "the previous shift is still open", shift_id=str(last.id), shift_status="open"
                )
            shift = Shift.open(
                station_id=station_id,
                number=(last.number if last else 0) + 1,
                cashier=cashier,
                opened_at=self.clock(),
                opened_by=opened_by,
            )
            return shift_view(uow.add(shift))

        return self.runner.run(command_id, ["shift-open", str(station_id), cashier], decide)

    def close(
        self, *, station_id: UUID, shift_id: UUID, counted: dict[str, Any], closed_by: str
    ) -> dict[str, Any]:
        """Close the shift with what the cashier counted per method; settle the station's
        income earned since its last batch, up to the journal's position at closing."""

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            shift = uow.find(Shift, shift_id)
            if shift is None or shift.station_id != station_id:
                raise NotFound(f"no shift {shift_id}")
            if not shift.is_open:
                raise ShiftStateError("this shift is already closed", shift_status="closed")
            closed_at = self.clock()
            totals = self.readings.totals(station_id, shift.opened_at, closed_at)
            account = uow.get_or_create(
                StationAccount,
                StationAccount.create_id(station_id),
                lambda: StationAccount(station_id),
            )
            amount, up_to = self.readings.unsettled_income(station_id, account.settled_up_to)
            settled = 0
            if amount > 0 and up_to > account.settled_up_to:
                account.settle(child(shift.id, "settlement"), amount, up_to)
                settled = amount
            shift.close(
                closed_at=closed_at,
                counted=counted,
                system_fen=totals["system_fen"],
                order_count=int(totals["order_count"]),
                refund_count=int(totals["refund_count"]),
                refunds_fen=int(totals["refunds_fen"]),
                settled_fen=settled,
                up_to_position=up_to if settled else account.settled_up_to,
                closed_by=closed_by,
            )
            return {**shift_view(shift), "station_available_fen": account.available}

        payload = ["shift-close", str(station_id), str(shift_id), counted]
        return self.runner.run(from_key("shift-close", str(shift_id)), payload, decide)

    def _last_shift(self, uow: UnitOfWork, station_id: UUID) -> Shift | None:
        """The newest shift: the read model's number, then forward in the store (the read
        model may lag behind it, never run ahead)."""
        number = self.readings.latest_number(station_id)
        last = uow.find(Shift, Shift.create_id(station_id, number)) if number else None
        for _ in range(MAX_WALK):
            following = uow.find(Shift, Shift.create_id(station_id, number + 1))
            if following is None:
                return last
            last, number = following, number + 1
        raise ShiftStateError("too many shifts ahead of the read model; retry", shift_status="busy")

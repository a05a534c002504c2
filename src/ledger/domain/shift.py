"""A cashier's shift at a station (P9): opened, then closed with what the cashier counted.

Closing records the system's totals by payment method for the shift's window (from the
order read model, handed in by the service), the order and refund counts, what was counted
per method and the difference (counted - system), and the settlement batch it triggered.
Shifts of a station are numbered 1, 2, 3 ... and follow each other: a shift opens only
when the one before it is closed, which the event store enforces (shift n+1 has one id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.errors import DomainError
from ledger.ids import from_key

COUNTED_METHODS = ("wechat", "alipay", "card")
MAX_COUNTED_FEN = 10**12
OPEN, CLOSED = "open", "closed"


class ShiftError(DomainError):
    code = "invalid_shift"


class ShiftStateError(DomainError):
    code = "shift_state"
    status = 409


def validate_counted(counted: dict[str, Any]) -> dict[str, int]:
    unknown = sorted(set(counted) - set(COUNTED_METHODS))
    if unknown:
        raise ShiftError(f"not a payment method: {', '.join(unknown)}", method=unknown[0])
    out: dict[str, int] = {}
    for method in COUNTED_METHODS:
        value = counted.get(method, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ShiftError(f"{method} must be an integer number of fen", method=method)
        if not 0 <= value <= MAX_COUNTED_FEN:
            raise ShiftError(f"{method} is out of range", method=method)
        out[method] = value
    return out


class Shift(Aggregate):
    @staticmethod
    def create_id(station_id: UUID, number: int) -> UUID:
        return from_key("shift", f"{station_id}:{number}")

    @classmethod
    def open(
        cls, *, station_id: UUID, number: int, cashier: str, opened_at: datetime, opened_by: str
    ) -> Shift:
        if not isinstance(cashier, str) or not cashier.strip() or len(cashier) > 64:
            raise ShiftError("a cashier name is 1-64 characters", field="cashier")
        return cls(
            station_id=station_id,
            number=number,
            cashier=cashier.strip(),
            opened_at=opened_at,
            opened_by=opened_by,
        )

    @event("Opened")
    def __init__(
        self, station_id: UUID, number: int, cashier: str, opened_at: datetime, opened_by: str
    ) -> None:
        self.station_id = station_id
        self.number = number
        self.cashier = cashier
        self.opened_at = opened_at
        self.opened_by = opened_by
        self.status = OPEN
        self.closed_at: datetime | None = None
        self.system_fen: dict[str, int] = {}
        self.counted_fen: dict[str, int] = {}
        self.difference_fen: dict[str, int] = {}
        self.order_count = 0
        self.refund_count = 0
        self.refunds_fen = 0
        self.settled_fen = 0
        self.up_to_position = 0

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    def close(
        self,
        *,
        closed_at: datetime,
        counted: dict[str, Any],
        system_fen: dict[str, int],
        order_count: int,
        refund_count: int,
        refunds_fen: int,
        settled_fen: int,
        up_to_position: int,
        closed_by: str,
    ) -> None:
        if not self.is_open:
            raise ShiftStateError("this shift is already closed", shift_status="closed")
        counted_fen = validate_counted(counted)
        difference = {m: counted_fen[m] - int(system_fen.get(m, 0)) for m in COUNTED_METHODS}
        self._closed(
            closed_at=closed_at,
            system_fen=dict(system_fen),
            counted_fen=counted_fen,
            difference_fen=difference,
            order_count=order_count,
            refund_count=refund_count,
            refunds_fen=refunds_fen,
            settled_fen=settled_fen,
            up_to_position=up_to_position,
            closed_by=closed_by,
        )

    @event("Closed")
    def _closed(
        self,
        closed_at: datetime,
        system_fen: dict[str, int],
        counted_fen: dict[str, int],
        difference_fen: dict[str, int],
        order_count: int,
        refund_count: int,
        refunds_fen: int,
        settled_fen: int,
        up_to_position: int,
        closed_by: str,
    ) -> None:
        self.status = CLOSED
        self.closed_at = closed_at
        self.system_fen = system_fen
        self.counted_fen = counted_fen
        self.difference_fen = difference_fen
        self.order_count = order_count
        self.refund_count = refund_count
        self.refunds_fen = refunds_fen
        self.settled_fen = settled_fen
        self.up_to_position = up_to_position

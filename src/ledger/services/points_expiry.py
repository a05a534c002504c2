"""Points expiry (SPEC M9, issue item 1): the scheduled job that expires points lots.

`expire_points(now)` gives every member with lots past their last day one PointsExpired
event (member:points -> points:issued) for everything due; members come from the read
model's expiry hints, and each wallet decides what is really due, so a stale hint costs one
look at a wallet and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.wallet import Wallet
from ledger.ids import from_key
from ledger.loyalty import business_day

DueMembers = Callable[[date], Sequence[UUID]]
Checked = Callable[[UUID, date], None]


class PointsExpiryService:
    def __init__(
        self,
        runner: CommandRunner,
        *,
        due_members: DueMembers = lambda today: (),
        checked: Checked = lambda member_id, today: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.runner = runner
        self.due_members = due_members
        self.checked = checked
        self.clock = clock

    def expire_points(self, now: datetime | None = None) -> dict[str, int]:
        today = business_day(now or self.clock())
        totals = {"members": 0, "points": 0}
        for member_id in self.due_members(today):
            points = self.expire_for(member_id, today)["expired"]
            self.checked(member_id, today)
            if points:
                totals["members"] += 1
                totals["points"] += points
        return totals

    def expire_for(self, member_id: UUID, today: date) -> dict[str, Any]:
        command_id = from_key("points-expiry", f"{member_id}:{today.isoformat()}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = uow.find(Wallet, Wallet.create_id(member_id))
            entry = wallet.expire_points(command_id, today) if wallet else None
            expired = -entry.amount_for(wallet.prefix + "points", "PTS") if entry and wallet else 0
            return {"member_id": str(member_id), "expired": expired}

        return self.runner.run(command_id, ["expire", str(member_id), today.isoformat()], decide)

    def lots(self, member_id: UUID) -> list[dict[str, Any]]:
        """The member's lots by expiry (the domain's own view)."""
        try:
            wallet: Any = self.runner.app.repository.get(Wallet.create_id(member_id))
        except Exception:  # noqa: BLE001 - no wallet: no lots
            return []
        return wallet.points_lots.view() if isinstance(wallet, Wallet) else []

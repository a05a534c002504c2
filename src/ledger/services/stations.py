"""Station settlement batches: income earned up to a log position becomes withdrawable."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.station_account import StationAccount
from ledger.ids import from_key


class StationAccountService:
    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def settle(self, *, station_id: UUID, amount: int, up_to_position: int) -> dict[str, Any]:
        command_id = from_key("settlement", f"{station_id}:{up_to_position}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            account = uow.get_or_create(
                StationAccount,
                StationAccount.create_id(station_id),
                lambda: StationAccount(station_id),
            )
            entry = account.settle(command_id, amount, up_to_position)
            return {"entry_id": str(entry.id), "available": account.available}

        payload = ["settle", str(station_id), amount, up_to_position]
        return self.runner.run(command_id, payload, decide)

"""Station settlement batches (income earned up to a log position becomes withdrawable), and
the station's webhook: where paid orders and refunds are pushed, signed with its secret."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.station import Station
from ledger.domain.station_account import StationAccount
from ledger.errors import NotFound
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


def webhook_view(station: Station) -> dict[str, Any]:
    """The webhook as the domain has it; the secret stays sealed (the caller unseals it once,
    to show it to whoever set it)."""
    return {
        "station_id": str(station.id),
        "url": station.webhook_url,
        "secret_sealed": station.webhook_secret_sealed,
        "version": station.version,
    }


class StationWebhookService:
    """Configure and remove a station's webhook. Each configuration is a new command (it
    rotates the secret) unless the caller's key makes a retry the same request: the retry
    then gets the first answer back, with the first secret."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def configure(
        self, station_id: UUID, *, url: str, secret_sealed: str, by: str, key: str | None = None
    ) -> dict[str, Any]:
        command_id = from_key("station_webhook", f"{station_id}:{key or uuid4().hex}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            station = self._existing(uow, station_id)
            station.configure_webhook(url, secret_sealed, by)
            return webhook_view(station)

        # The sealed secret is new on every attempt: it is not part of what identifies it.
        payload = ["station_webhook", str(station_id), url, by]
        return self.runner.run(command_id, payload, decide)

    def remove(self, station_id: UUID, *, by: str, key: str | None = None) -> dict[str, Any]:
        """Returns `removed`: False when the station had no webhook."""
        command_id = from_key("station_webhook_removal", f"{station_id}:{key or uuid4().hex}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            station = self._existing(uow, station_id)
            return {**webhook_view(station), "removed": station.remove_webhook(by)}

        return self.runner.run(command_id, ["station_webhook_removal", str(station_id)], decide)

    def get(self, station_id: UUID) -> dict[str, Any]:
        """The current webhook from the store (no projection lag: a test delivery right
        after configuring uses the new secret)."""
        try:
            station: Any = self.runner.app.repository.get(station_id)
        except Exception as e:  # noqa: BLE001 - AggregateNotFoundError and friends
            raise NotFound(f"no station {station_id}") from e
        if not isinstance(station, Station):
            raise NotFound(f"no station {station_id}")
        return webhook_view(station)

    @staticmethod
    def _existing(uow: UnitOfWork, station_id: UUID) -> Station:
        try:
            station = uow.find(Station, station_id)
        except TypeError:  # the id names another kind of aggregate
            station = None
        if station is None:
            raise NotFound(f"no station {station_id}")
        return station

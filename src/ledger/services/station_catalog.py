"""Station catalog commands: register and edit stations (A2), their grades, their prices (P7).

Every command has a deterministic id, so a retried request has one effect and gets the first
answer back. Registering is keyed by the station code and a price change by the caller's key.
An edit or a grade configuration takes the caller's key when it has one (an Idempotency-Key);
without one its id is derived from what it asks and the station's version in the store, so a
retry against the same state collapses, while the same edit asked again after other changes
is a new command (A -> B -> A stays possible). Edits only record what differs, so a retry
that lands after its twin applied is a no-op.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ledger.commands import CommandRunner, UnitOfWork, fingerprint
from ledger.domain.station import Station
from ledger.errors import NotFound
from ledger.ids import from_key


def station_view(station: Station) -> dict[str, Any]:
    """The domain's own view, JSON-native (it is stored as the command's receipt)."""
    return {
        "station_id": str(station.id),
        "code": station.code,
        "name": station.name,
        "address": station.address,
        "phone": station.phone,
        "lat_e6": station.lat_e6,
        "lng_e6": station.lng_e6,
        "rating": station.rating,
        "settlement_rate_bps": station.settlement_rate_bps,
        "status": station.status,
        "grades": {
            grade: {"price_fen_per_litre": g["price_fen_per_litre"], "nozzles": list(g["nozzles"])}
            for grade, g in sorted(station.grades.items())
        },
        "version": station.version,
    }


class StationCatalogService:
    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def register(
        self,
        code: str,
        name: str,
        address: str,
        phone: str,
        lat_e6: int,
        lng_e6: int,
        settlement_rate_bps: int,
        rating: int = 0,
    ) -> dict[str, Any]:
        """Register a station; registering the same code with the same profile again returns
        the first answer, with a different profile it is an idempotency conflict (409)."""
        profile: dict[str, Any] = {
            "code": code,
            "name": name,
            "address": address,
            "phone": phone,
            "lat_e6": lat_e6,
            "lng_e6": lng_e6,
            "settlement_rate_bps": settlement_rate_bps,
            "rating": rating,
        }
        command_id = from_key("station_register", str(code))

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            return station_view(uow.add(Station.register(**profile)))

        return self.runner.run(command_id, ["station_register", profile], decide)

    def edit(self, station_id: UUID, *, key: str | None = None, **fields: Any) -> dict[str, Any]:
        """Change profile fields (name, address, phone, lat_e6, lng_e6, rating,
        settlement_rate_bps, status); returns the station and the fields that changed."""
        payload = ["station_edit", str(station_id), fields]
        command_id = self._command_id(station_id, payload, key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            station = self._existing(uow, station_id)
            changed = station.edit(**fields)
            return {**station_view(station), "changed": sorted(changed)}

        return self.runner.run(command_id, payload, decide)

    def configure_grade(
        self, station_id: UUID, grade: str, nozzles: list[int], *, key: str | None = None
    ) -> dict[str, Any]:
        """Say which nozzles dispense `grade` (a grade must be configured to be priced)."""
        payload = ["station_grade", str(station_id), grade, list(nozzles)]
        command_id = self._command_id(station_id, payload, key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            station = self._existing(uow, station_id)
            changed = station.configure_grade(grade, list(nozzles))
            return {**station_view(station), "changed": changed}

        return self.runner.run(command_id, payload, decide)

    def change_price(
        self, station_id: UUID, grade: str, price: int, changed_by: str, key: str
    ) -> dict[str, Any]:
        """Set a grade's price in fen per litre. The same price again is answered with
        `changed: False` and records nothing."""
        command_id = from_key("station_price", f"{station_id}:{key}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            station = self._existing(uow, station_id)
            previous = station.grades.get(grade, {}).get("price_fen_per_litre")
            changed = station.change_price(grade, price, changed_by)
            return {
                "station_id": str(station_id),
                "grade": grade,
                "price_fen_per_litre": price,
                "previous_fen_per_litre": previous if changed else None,
                "changed": changed,
            }

        payload = ["station_price", str(station_id), grade, price, changed_by]
        return self.runner.run(command_id, payload, decide)

    def get(self, station_id: UUID) -> dict[str, Any]:
        """The domain's own view (for audits and tests; the API reads projections)."""
        try:
            station: Any = self.runner.app.repository.get(station_id)
        except Exception as e:  # noqa: BLE001 - AggregateNotFoundError and friends
            raise NotFound(f"no station {station_id}") from e
        if not isinstance(station, Station):
            raise NotFound(f"no station {station_id}")
        return station_view(station)

    def _command_id(self, station_id: UUID, payload: list[Any], key: str | None) -> UUID:
        if key is not None:
            return from_key("station_command", f"{station_id}:{key}")
        # The version is read from the store, not the cache: a stale cached version could
        # collapse this command onto an older twin and silently drop it.
        last = self.runner.app.recorder.select_events(station_id, desc=True, limit=1)
        if not last:
            raise NotFound(f"no station {station_id}")
        version = last[0].originator_version
        return from_key("station_command", f"{station_id}:{version}:{fingerprint(payload)}")

    @staticmethod
    def _existing(uow: UnitOfWork, station_id: UUID) -> Station:
        station = uow.find(Station, station_id)
        if station is None:
            raise NotFound(f"no station {station_id}")
        return station

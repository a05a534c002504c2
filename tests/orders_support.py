"""Building blocks for order tests: a station with a price, a funded member."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from infra.bootstrap import Core
from ledger.services.fuel_orders import FuelOrderService
from ledger.services.station_catalog import StationCatalogService


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: int) -> None:
        self.now += timedelta(**delta)


def make_station(core: Core, *, rate_bps: int = 100, price: int = 789) -> UUID:
    catalog = StationCatalogService(core.runner)
    code = f"S-{uuid4().hex[:10]}"
    station = catalog.register(
        code=code,
        name="Test station",
        address="1 Road",
        phone="+8610000000",
        lat_e6=39_900_000,
        lng_e6=116_400_000,
        settlement_rate_bps=rate_bps,
    )
    station_id = UUID(station["station_id"])
    catalog.configure_grade(station_id, "92#", [1, 2, 3])
    catalog.change_price(station_id, "92#", price, "test", key=f"{code}-p")
    return station_id


def order_service(core: Core, clock: Clock | None = None) -> FuelOrderService:
    return FuelOrderService(core.runner, clock=clock or Clock())

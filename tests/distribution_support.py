"""Building blocks for the distribution, withdrawal, points and mall tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from databases import create_database, drop_database
from infra.bootstrap import Core, build_core
from infra.settings import Settings
from ledger.domain.member import Member
from ledger.ids import child
from ledger.services.fuel_orders import FuelOrderService
from ledger.services.wallets import open_wallet
from orders_support import Clock, make_station

DAY = timedelta(days=1)
_STATIONS: dict[str, UUID] = {}


def station(core: Core) -> UUID:
    """One station (1% settlement rate) per test database, for tests that only need somewhere
    to buy fuel."""
    if core.owner_url not in _STATIONS:
        _STATIONS[core.owner_url] = make_station(core, rate_bps=100)
    return _STATIONS[core.owner_url]


def own_core(server_url: str, settings: Settings) -> Iterator[Core]:
    """A database of a test module's own (like test_outbox_workers): these tests make many
    members, stations and large orders, and other modules' figures read the whole database."""
    url = create_database(server_url, "ledger_distribution")
    built = build_core(settings, url)
    yield built
    built.close()
    drop_database(server_url, url)


def member(core: Core, name: str = "m") -> UUID:
    signed = core.members.sign_in(f"openid-{name}-{uuid4().hex[:12]}", None)
    return UUID(signed["member_id"])


def bind(core: Core, referee: UUID, referrer: UUID) -> None:
    """The referral binding (another issue's work): straight on the Member aggregate."""
    core.runner.run(
        uuid4(),
        ["bind", str(referee), str(referrer)],
        lambda uow: uow.get(Member, referee).bind_referrer(referrer),
    )


def orders_of(core: Core, clock: Clock, **kwargs) -> FuelOrderService:
    """The core's order service (its listeners: coupons, commission) on a test clock."""
    return FuelOrderService(
        core.runner,
        clock=clock,
        rules=kwargs.pop("rules", core.orders.rules),
        offers=core.orders.offers,
        listeners=kwargs.pop("listeners", core.orders.listeners),
        **kwargs,
    )


def card_order(
    orders: FuelOrderService, member_id: UUID, station: UUID, amount: int, key: str | None = None
) -> UUID:
    key = key or uuid4().hex
    order = orders.create(
        member_id=member_id, key=key, station_id=station, grade="92#", nozzle=1, amount_fen=amount
    )
    orders.pay_with_card(order_id=UUID(order["order_id"]), member_id=member_id)
    return UUID(order["order_id"])


def give_commission(core: Core, m: UUID, amount: int) -> None:
    """Commission already released to available (test_commission shows how it gets there)."""
    key = uuid4()

    def decide(uow):
        wallet = open_wallet(uow, m)
        wallet.earn_commission(child(key, "e"), key, amount, datetime.now(UTC) - DAY)
        wallet.release_commission(child(key, "r"), datetime.now(UTC))

    core.runner.run(key, ["give", str(m), amount], decide)

"""Every projector the system runs, by name."""

from __future__ import annotations

from projections.coupons import CouponsProjector
from projections.distribution import DistributionProjector, PayoutOutboxProjector
from projections.framework import Projector
from projections.journal import JournalProjector
from projections.mall import MallProjector
from projections.members import MembersProjector
from projections.orders_bulk import FoldedOrdersProjector
from projections.outbox import OutboxProjector
from projections.platform_figures import PlatformFiguresProjector
from projections.reconciliation import ReconciliationProjector
from projections.shifts import ShiftsProjector
from projections.station_figures import StationFiguresProjector
from projections.stations import StationsProjector


def all_projectors() -> list[Projector]:
    # The outbox comes last: the rows its actors read are then already projected.
    return [
        JournalProjector(),
        MembersProjector(),
        FoldedOrdersProjector(),  # the live handlers, folded for large pages
        StationsProjector(),
        StationFiguresProjector(),
        PlatformFiguresProjector(),
        ShiftsProjector(),
        CouponsProjector(),
        DistributionProjector(),
        MallProjector(),
        ReconciliationProjector(),
        PayoutOutboxProjector(),
        OutboxProjector(),
    ]


def by_name(name: str) -> Projector:
    for projector in all_projectors():
        if projector.name == name:
            return projector
    raise KeyError(f"no projector named {name!r}")

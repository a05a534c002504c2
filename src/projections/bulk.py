"""How each projector is fed in the bulk phase of a rebuild.

A fold is fed a lane's events (raw: see projections.raw) window by window, and writes their
effects at each checkpoint. The projectors that see many events have a fold of their own
that never makes a domain object of the common ones (journal, orders, station and platform
figures, the distribution's points lots, reconciliation's provider movements, members); any
other projector gets `EventFold`, which decodes its events with the application's mapper and
calls its `apply_bulk`, exactly as the live runner would.
A fold is chosen by the projector's exact class, so a subclass that changes what a
projector writes falls back to EventFold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from psycopg import Cursor

from projections.distribution import DistributionProjector
from projections.distribution_bulk import DistributionFold
from projections.figures_bulk import PlatformFiguresFold, StationFiguresFold
from projections.framework import Envelope, Projector
from projections.journal import JournalProjector
from projections.journal_bulk import JournalFold
from projections.members import MembersProjector
from projections.members_bulk import MembersFold
from projections.orders_bulk import FoldedOrdersProjector, OrdersFold
from projections.platform_figures import PlatformFiguresProjector
from projections.raw import RawEvent
from projections.reconciliation import ReconciliationProjector
from projections.reconciliation_bulk import ReconciliationFold
from projections.station_figures import StationFiguresProjector


class Fold(Protocol):
    # Tables the fold only appends to (no upsert, no lookup): their shadows get their keys
    # and triggers after the bulk phase (see shadow.create_shadow).
    appends_only: tuple[str, ...]

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        """One window's events, in log order (it may write already)."""

    def flush(self, cur: Cursor[Any]) -> None:
        """A checkpoint: write what the fold holds (the caller moves the tracking row)."""


class EventFold:
    """Any projector: its events decoded into domain events, then its `apply_bulk`, as
    the live runner would call it."""

    appends_only: tuple[str, ...] = ()
    cost = 50.0  # the mapper's decoding, then often a statement per event

    def __init__(self, projector: Projector, app: Application[UUID], complete: bool) -> None:
        self.projector, self.app = projector, app

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        mapper = self.app.mapper
        envelopes = [
            Envelope(
                e.position,
                mapper.to_domain_event(
                    StoredEvent(UUID(e.originator), e.version, e.topic, e.state)
                ),
            )
            for e in events
        ]
        if envelopes:
            self.projector.apply_bulk(cur, envelopes)

    def flush(self, cur: Cursor[Any]) -> None:
        pass  # apply_bulk wrote everything


_FOLDS: dict[type[Projector], type[Any]] = {
    JournalProjector: JournalFold,
    FoldedOrdersProjector: OrdersFold,
    StationFiguresProjector: StationFiguresFold,
    PlatformFiguresProjector: PlatformFiguresFold,
    DistributionProjector: DistributionFold,
    ReconciliationProjector: ReconciliationFold,
    MembersProjector: MembersFold,
}


def fold_for(projector: Projector, app: Application[UUID], *, complete: bool) -> Fold:
    """`complete`: the projector's shadow tables were empty when this lane started (it
    starts at position 0), so a fold may take what it wrote for all the table holds."""
    make = _FOLDS.get(type(projector), EventFold)
    return make(projector, app, complete)  # type: ignore[no-any-return]


def cost_of(projector: Projector) -> float:
    """A rough cost of folding one event (CPU microseconds, the lane's and the server's,
    measured on bench/rebuild.py's log), for sharing projectors out over lanes."""
    return float(getattr(_FOLDS.get(type(projector), EventFold), "cost", 50.0))


def appends_only(projector: Projector) -> tuple[str, ...]:
    """The tables (bare names) whose keys and triggers wait until the bulk phase is over."""
    return getattr(_FOLDS.get(type(projector), EventFold), "appends_only", ())

"""Balances from the raw log alone: decode every event and sum its legs, no read model used.

Finance runs this to check the read models (DESIGN.md invariant 5); tests use it too.
"""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

from eventsourcing.application import Application

from ledger.journal import JournalEntry


def replay_balances(app: Application[UUID], page: int = 5000) -> dict[tuple[str, str], int]:
    balances: dict[tuple[str, str], int] = defaultdict(int)
    position = 0
    while True:
        notifications = app.recorder.select_notifications(
            start=position, limit=page, inclusive_of_start=False
        )
        if not notifications:
            return dict(balances)
        for n in notifications:
            entry = getattr(app.mapper.to_domain_event(n), "entry", None)
            if isinstance(entry, JournalEntry):
                for leg in entry.legs:
                    balances[(leg.account, leg.asset)] += leg.amount
        position = notifications[-1].id

"""The distribution projection for the bulk phase of a rebuild: the same rows as
DistributionProjector.apply. The points lots follow every wallet event's journal entry, so
they are folded from raw events (see projections.raw) with each member's lots kept in memory
between checkpoints; the few commission and withdrawal events go through the live handlers,
decoded into domain events, in log order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from psycopg import Cursor

from ledger.domain.points_lots import PointsLots
from projections.distribution import FOLLOWED, DistributionProjector
from projections.framework import Envelope
from projections.raw import RawEvent, copy_rows, entry_of, json_text

LOTS_COLUMNS = ("member_id", "lots", "taken", "points", "next_expiry", "position")
Move = tuple[str, str, int, dict[str, Any]]  # member, entry kind, points, memo


class DistributionFold:
    appends_only: tuple[str, ...] = ()
    cost = 14.0  # see bulk.cost_of

    def __init__(
        self, projector: DistributionProjector, app: Application[UUID], complete: bool
    ) -> None:
        self.projector, self.app, self.complete = projector, app, complete
        self.lots: dict[str, PointsLots] = {}  # by member id (canonical text)
        self.stored: set[str] = set()  # members with a row in the table
        self.members: dict[str, str | None] = {}  # account -> member id, None: not points
        self.kinds: dict[str, tuple[bool, bool]] = {}
        self.touched: dict[str, int] = {}  # members whose lots changed since the checkpoint

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        moves: list[tuple[int, Move]] = []
        handled: list[RawEvent] = []
        for event in events:
            handles, follows = self._roles(event.kind)
            if handles:
                handled.append(event)
            if follows:
                moves.extend((event.position, m) for m in self._moves(event))
        self._load(cur, {m[0] for _, m in moves})
        touched = self.touched
        for position, (member, kind, points, memo) in moves:
            self.lots[member].follow(kind, points, memo)
            touched[member] = position
        for event in handled:
            stored = StoredEvent(UUID(event.originator), event.version, event.topic, event.state)
            domain_event = self.app.mapper.to_domain_event(stored)
            self.projector.handle(cur, Envelope(event.position, domain_event))

    def flush(self, cur: Cursor[Any]) -> None:
        touched, self.touched = self.touched, {}
        self._write(cur, touched)

    def _roles(self, kind: str) -> tuple[bool, bool]:
        """Whether a live handler takes events of this kind; whether the lots follow them."""
        roles = self.kinds.get(kind)
        if roles is None:
            roles = self.kinds[kind] = (self.projector.handles(kind), kind.startswith(FOLLOWED))
        return roles

    def _moves(self, event: RawEvent) -> list[Move]:
        entry = entry_of(event.data)
        if entry is None:
            return []
        found = []
        for account, _, amount in entry["legs"]:
            member = self.members.get(account, "")
            if member == "":
                member = self.members[account] = _points_member(account)
            if member is not None:
                found.append((member, entry["kind"], amount, self._memo(entry)))
        return found

    def _memo(self, entry: dict[str, Any]) -> dict[str, Any]:
        memo = entry.get("memo") or {}
        if any(type(v) in (dict, list) for v in memo.values()):
            # a transcoded value inside: decode it the way the domain event would have it
            return self.app.mapper.transcoder.decode(orjson.dumps(memo))  # type: ignore[no-any-return]
        return memo  # type: ignore[no-any-return]

    def _load(self, cur: Cursor[Any], members: set[str]) -> None:
        missing = [m for m in members if m not in self.lots]
        if missing and not self.complete:
            rows = cur.execute(
                "SELECT member_id, lots, taken FROM points_lots WHERE member_id = ANY(%s::uuid[])",
                (missing,),
            ).fetchall()
            for member_id, lots, taken in rows:
                found = self.lots[str(member_id)] = PointsLots()
                found.lots = [list(x) for x in lots]
                found.taken = {k: [list(s) for s in v] for k, v in taken.items()}
                self.stored.add(str(member_id))
        for m in missing:
            self.lots.setdefault(m, PointsLots())

    def _write(self, cur: Cursor[Any], touched: dict[str, int]) -> None:
        if not touched:
            return
        replaced = [m for m in touched if m in self.stored]
        if replaced:
            cur.execute("DELETE FROM points_lots WHERE member_id = ANY(%s::uuid[])", (replaced,))
        rows = []
        for member, position in touched.items():
            lots = self.lots[member]
            next_expiry = lots.lots[0][0] if lots.lots else None
            rows.append(
                (
                    member,
                    json_text(lots.lots),
                    json_text(lots.taken),
                    lots.total,
                    next_expiry,
                    position,
                )
            )
        copy_rows(cur, "points_lots", LOTS_COLUMNS, rows)
        self.stored.update(touched)


def _points_member(account: str) -> str | None:
    """The member whose spendable points `account` is (as LotsBatch.follow reads it)."""
    parts = account.split(":")
    if len(parts) == 3 and parts[0] == "member" and parts[2] == "points":
        return str(UUID(parts[1]))
    return None

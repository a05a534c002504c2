"""The members projection for the bulk phase of a rebuild: the same rows as
MembersProjector.apply, from raw events (see projections.raw). Registrations, most of its
events, are gathered and written once per checkpoint; any other event of a member goes through
the live statements, decoded into its domain event, after the member's own registration if
that is still gathered here (another member's rows are not its concern)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from psycopg import Cursor

from projections.framework import Envelope
from projections.members import MembersProjector
from projections.raw import RawEvent, insert_rows, ts

MEMBER_COLUMNS = (
    "id",
    "openid",
    "unionid",
    "referral_code",
    "alipay_user_id",
    "joined_at",
    "updated_at",
    "position",
)


class MembersFold:
    appends_only: tuple[str, ...] = ()
    cost = 3.0  # see bulk.cost_of

    def __init__(self, projector: MembersProjector, app: Application[UUID], complete: bool) -> None:
        self.projector, self.app = projector, app
        self.registered: dict[str, tuple[Any, ...]] = {}  # not written yet, in log order

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        statements, registered = self.projector.statements, self.registered
        for event in events:
            kind = event.kind.rpartition(".")[2]  # the live projector's `_kind`
            if kind == "Registered":
                if event.originator not in registered:  # like ON CONFLICT (id) DO NOTHING
                    d, at = event.data, ts(event.data["timestamp"])
                    registered[event.originator] = (
                        event.originator, d["openid"], d["unionid"], d["referral_code"],
                        d.get("alipay_user_id"), at, at, event.position,
                    )  # fmt: skip
            elif kind in statements:
                if event.originator in registered:
                    self.flush(cur)
                stored = StoredEvent(
                    UUID(event.originator), event.version, event.topic, event.state
                )
                domain_event = self.app.mapper.to_domain_event(stored)
                self.projector.apply(cur, [Envelope(event.position, domain_event)])

    def flush(self, cur: Cursor[Any]) -> None:
        if self.registered:  # emptied in place: feed holds it
            insert_rows(cur, "members", MEMBER_COLUMNS, self.registered.values(), conflict="(id)")
            self.registered.clear()

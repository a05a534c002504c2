"""read.members: one row per member, for GET /v1/me and the back office's member list."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ledger.domain.member import PROFILE_FIELDS, mask_phone
from projections.framework import Envelope, Projector

_REGISTER = (
    "INSERT INTO members (id, openid, unionid, referral_code, alipay_user_id, joined_at, "
    "updated_at, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)
# Only the fields an event names change: a NULL flag keeps the stored value.
_PROFILE = (
    "UPDATE members SET "
    + ", ".join(f"{f} = CASE WHEN %s THEN %s ELSE {f} END" for f in PROFILE_FIELDS)
    + ", updated_at = %s, position = %s WHERE id = %s"
)
_PHONE = (
    "UPDATE members SET phone = %s, phone_masked = %s, updated_at = %s, position = %s WHERE id = %s"
)

_REFERRER = "UPDATE members SET referrer = %s, updated_at = %s, position = %s WHERE id = %s"
_ALIPAY = "UPDATE members SET alipay_user_id = %s, updated_at = %s, position = %s WHERE id = %s"


def _kind(envelope: Envelope) -> str:
    return type(envelope.event).__name__


def _row(envelope: Envelope) -> tuple[Any, ...]:
    e, pos = envelope.event, envelope.position
    kind = _kind(envelope)
    if kind == "Registered":
        return (
            e.originator_id,
            e.openid,
            e.unionid,
            e.referral_code,
            getattr(e, "alipay_user_id", None),  # absent from events before Alipay sign-in
            e.timestamp,
            e.timestamp,
            pos,
        )
    if kind == "ProfileUpdated":
        values: list[Any] = []
        for field in PROFILE_FIELDS:
            values += [field in e.changes, e.changes.get(field)]
        return (*values, e.timestamp, pos, e.originator_id)
    if kind == "ReferrerBound":
        return (e.referrer, e.timestamp, pos, e.originator_id)
    if kind == "AlipayLinked":
        return (e.user_id, e.timestamp, pos, e.originator_id)
    return (e.phone, mask_phone(e.phone), e.timestamp, pos, e.originator_id)


class MembersProjector(Projector):
    name = "members"
    schema_aware = True
    topic_prefixes = ("ledger.domain.member:",)
    statements = {
        "Registered": _REGISTER,
        "ProfileUpdated": _PROFILE,
        "PhoneBound": _PHONE,
        "ReferrerBound": _REFERRER,
        "AlipayLinked": _ALIPAY,
    }

    def tables(self) -> Sequence[str]:
        return ("read.members",)

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        wanted = [env for env in envelopes if _kind(env) in self.statements]
        # Runs of one kind go in one executemany; order across kinds is kept.
        for kind, run in groupby(wanted, key=_kind):
            cur.executemany(self.statements[kind], [_row(env) for env in run])


_COLUMNS = (
    "id, nickname, avatar_url, phone, phone_masked, joined_at, referrer, "
    "openid IS NOT NULL AS wechat_linked, alipay_user_id IS NOT NULL AS alipay_linked"
)


def member_row(pool: ConnectionPool[Any], member_id: UUID) -> dict[str, Any] | None:
    """One member as the read model has it (GET /v1/me); None until the projector has run."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM read.members WHERE id = %s", (member_id,)
        ).fetchone()
    if row is None:
        return None
    row["id"] = str(row["id"])
    row["joined_at"] = row["joined_at"].isoformat()
    row["referrer"] = str(row["referrer"]) if row["referrer"] else None
    return row


def member_by_phone(pool: ConnectionPool[Any], phone: str) -> UUID | None:
    """The member a phone number is bound to: the earliest, should several have bound it."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT id FROM read.members WHERE phone = %s ORDER BY joined_at, id LIMIT 1",
            (phone,),
        ).fetchone()
    return UUID(str(row[0])) if row else None

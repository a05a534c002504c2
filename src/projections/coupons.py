"""Coupon templates, every issued coupon and its state, campaigns and their gifts (A6, M9,
A13), and the queries over them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from projections import cursor as cursors
from projections.framework import Envelope, Projector

TEMPLATE = "ledger.domain.coupon_template:CouponTemplate."
COUPON = "ledger.domain.coupon:Coupon."
CAMPAIGN = "ledger.domain.campaign:Campaign."
TERMS = (
    "title",
    "kind",
    "amount_off_fen",
    "percent_off_bps",
    "max_discount_fen",
    "min_amount_fen",
    "grades",
    "station_ids",
    "funder_account",
    "stackable",
)
_TERMS_SQL = ", ".join(TERMS)
_TERMS_ARGS = ", ".join(["%s"] * len(TERMS))


def _terms(terms: dict[str, Any]) -> list[Any]:
    values = [terms.get(name) for name in TERMS]
    values[TERMS.index("grades")] = list(terms.get("grades") or [])
    values[TERMS.index("station_ids")] = [UUID(s) for s in terms.get("station_ids") or []]
    return values


class CouponsProjector(Projector):
    name = "coupons"
    topic_prefixes = (TEMPLATE, COUPON, CAMPAIGN)
    schema_aware = True

    def tables(self) -> Sequence[str]:
        return ("read.coupon_templates", "read.coupons", "read.campaigns", "read.campaign_gifts")

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            e = env.event
            handler = getattr(self, "_" + type(e).__qualname__.replace(".", "_"), None)
            if handler is not None:
                handler(cur, e, env.position)

    # -- templates --------------------------------------------------------------------------

    def _CouponTemplate_Created(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            f"INSERT INTO coupon_templates (template_id, key, {_TERMS_SQL}, valid_from, "
            "valid_until, valid_days, per_member_limit, total_quantity, created_at, "
            f"updated_at, position) VALUES (%s, %s, {_TERMS_ARGS}, %s, %s, %s, %s, %s, %s, %s, "
            "%s) ON CONFLICT (template_id) DO NOTHING",
            (
                e.originator_id,
                e.key,
                *_terms(e.terms),
                e.valid_from,
                e.valid_until,
                e.valid_days,
                e.per_member_limit,
                e.total_quantity,
                e.timestamp,
                e.timestamp,
                pos,
            ),
        )

    def _CouponTemplate_Issued(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE coupon_templates SET issued = issued + %s, updated_at = %s, position = %s "
            "WHERE template_id = %s",
            (e.count, e.timestamp, pos, e.originator_id),
        )

    # -- coupons ----------------------------------------------------------------------------

    def _Coupon_Issued(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO coupons (coupon_id, template_id, member_id, issue_key, source, "
            f"{_TERMS_SQL}, state, valid_from, valid_until, issued_at, updated_at, position) "
            f"VALUES (%s, %s, %s, %s, %s, {_TERMS_ARGS}, 'held', %s, %s, %s, %s, %s) "
            "ON CONFLICT (coupon_id) DO NOTHING",
            (
                e.originator_id,
                e.template_id,
                e.member_id,
                e.issue_key,
                e.source,
                *_terms(e.terms),
                e.valid_from,
                e.valid_until,
                e.timestamp,
                e.timestamp,
                pos,
            ),
        )

    def _move(self, cur: Cursor[Any], e: Any, pos: int, sets: str, *args: Any) -> None:
        cur.execute(
            f"UPDATE coupons SET {sets}, updated_at = %s, position = %s WHERE coupon_id = %s",
            (*args, e.timestamp, pos, e.originator_id),
        )

    def _Coupon_Locked(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._move(
            cur, e, pos, "state = 'locked', order_id = %s, locked_at = %s", e.order_id, e.timestamp
        )

    def _Coupon_Redeemed(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._move(
            cur,
            e,
            pos,
            "state = 'redeemed', order_id = %s, redeemed_at = %s",
            e.order_id,
            e.timestamp,
        )

    def _Coupon_Released(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._move(cur, e, pos, "state = 'held', order_id = NULL, locked_at = NULL")

    def _Coupon_Restored(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._move(
            cur,
            e,
            pos,
            "state = 'held', order_id = NULL, locked_at = NULL, "
            "redeemed_at = NULL, restored = restored + 1",
        )

    def _Coupon_Expired(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._move(cur, e, pos, "state = 'expired', expired_at = %s", e.timestamp)

    # -- campaigns --------------------------------------------------------------------------

    def _Campaign_Created(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO campaigns (campaign_id, key, title, kind, amount_fen, budget_fen, "
            "template_id, max_coupons, audience, status, created_at, updated_at, position) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'draft', %s, %s, %s) "
            "ON CONFLICT (campaign_id) DO NOTHING",
            (
                e.originator_id,
                e.key,
                e.title,
                e.kind,
                e.amount_fen,
                e.budget_fen,
                e.template_id,
                e.max_coupons,
                Jsonb(e.audience),
                e.timestamp,
                e.timestamp,
                pos,
            ),
        )

    def _Campaign_Published(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE campaigns SET status = 'published', published_at = %s, updated_at = %s, "
            "position = %s WHERE campaign_id = %s",
            (e.timestamp, e.timestamp, pos, e.originator_id),
        )

    def _Campaign_Given(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE campaigns SET recipients = recipients + %s, "
            "spent_fen = spent_fen + CASE WHEN kind = 'red_packet' THEN amount_fen * %s ELSE 0 "
            "END, coupons_given = coupons_given + CASE WHEN kind = 'coupon' THEN %s ELSE 0 END, "
            "updated_at = %s, position = %s WHERE campaign_id = %s",
            (len(e.gifts), len(e.gifts), len(e.gifts), e.timestamp, pos, e.originator_id),
        )
        cur.executemany(
            "INSERT INTO campaign_gifts (campaign_id, member_id, amount_fen, coupon_id, "
            "given_at, position) SELECT %s, %s, CASE WHEN kind = 'red_packet' THEN amount_fen "
            "ELSE 0 END, %s, %s, %s FROM campaigns WHERE campaign_id = %s "
            "ON CONFLICT DO NOTHING",
            [
                (
                    e.originator_id,
                    UUID(hex=m),
                    UUID(hex=c) if c else None,
                    e.timestamp,
                    pos,
                    e.originator_id,
                )
                for m, c in sorted(e.gifts.items())
            ],
        )


# -- queries ----------------------------------------------------------------------------------

COUPON_COLUMNS = (
    f"coupon_id, template_id, member_id, source, {_TERMS_SQL}, state, order_id, valid_from, "
    "valid_until, issued_at, locked_at, redeemed_at, expired_at, restored"
)
# What the member sees (M9): valid (held and within validity, or locked by an unpaid
# order), used (redeemed), expired (recorded, or held past validity before the sweep).
MEMBER_STATES = {
    "valid": "(state = 'locked' OR (state = 'held' AND valid_until > %(now)s))",
    "used": "state = 'redeemed'",
    "expired": "(state = 'expired' OR (state = 'held' AND valid_until <= %(now)s))",
}
ADMIN_STATES = ("held", "locked", "redeemed", "expired")


def _page(
    pool: ConnectionPool,
    sql: str,
    params: dict[str, Any],
    order: tuple[str, str],
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    time_col, id_col = order
    if cursor:
        at, key = cursors.decode(cursor, 2)
        sql += f" AND ({time_col}, {id_col}) < (%(c_at)s::timestamptz, %(c_id)s::uuid)"
        params |= {"c_at": at, "c_id": key}
    sql += f" ORDER BY {time_col} DESC, {id_col} DESC LIMIT %(limit)s"
    params["limit"] = limit + 1
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, params).fetchall()
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    next_cursor = (
        cursors.encode(last[time_col].isoformat(), last[id_col]) if more and last else None
    )
    return {"items": page, "next_cursor": next_cursor}


def _member_view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    state = row["state"]
    if state == "redeemed":
        shown = "used"
    elif state == "expired" or (state == "held" and row["valid_until"] <= now):
        shown = "expired"
    else:
        shown = "valid"
    return {**row, "display_state": shown}


def member_coupons(
    pool: ConnectionPool,
    member_id: UUID,
    *,
    now: datetime,
    state: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    sql = f"SELECT {COUPON_COLUMNS} FROM read.coupons WHERE member_id = %(member)s"
    if state is not None:
        sql += " AND " + MEMBER_STATES[state]
    page = _page(
        pool, sql, {"member": member_id, "now": now}, ("issued_at", "coupon_id"), limit, cursor
    )
    page["items"] = [_member_view(r, now) for r in page["items"]]
    return page


def all_coupons(
    pool: ConnectionPool,
    *,
    state: str | None = None,
    template_id: UUID | None = None,
    member_id: UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    sql = f"SELECT {COUPON_COLUMNS} FROM read.coupons WHERE true"
    params: dict[str, Any] = {}
    for column, value in (("state", state), ("template_id", template_id), ("member_id", member_id)):
        if value is not None:
            sql += f" AND {column} = %({column})s"
            params[column] = value
    return _page(pool, sql, params, ("issued_at", "coupon_id"), limit, cursor)


def templates(pool: ConnectionPool, *, limit: int = 50, cursor: str | None = None) -> dict:
    sql = (
        f"SELECT template_id, key, {_TERMS_SQL}, valid_from, valid_until, valid_days, "
        "per_member_limit, total_quantity, issued, total_quantity - issued AS remaining, "
        "created_at FROM read.coupon_templates WHERE true"
    )
    return _page(pool, sql, {}, ("created_at", "template_id"), limit, cursor)


def campaigns(pool: ConnectionPool, *, limit: int = 50, cursor: str | None = None) -> dict:
    sql = (
        "SELECT campaign_id, key, title, kind, amount_fen, budget_fen, spent_fen, template_id, "
        "max_coupons, coupons_given, recipients, audience, status, created_at, published_at "
        "FROM read.campaigns WHERE true"
    )
    return _page(pool, sql, {}, ("created_at", "campaign_id"), limit, cursor)


def due_coupons(pool: ConnectionPool, now: datetime, limit: int) -> list[UUID]:
    """Held coupons whose validity is over: the expiry sweep's candidates."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT coupon_id FROM read.coupons WHERE state = 'held' AND valid_until <= %s "
            "ORDER BY valid_until, coupon_id LIMIT %s",
            (now, limit),
        ).fetchall()
    return [r[0] for r in rows]


def segment_members(pool: ConnectionPool, segment: str) -> list[UUID]:
    """The members of a named segment, oldest first (a stable order for chunking)."""
    if segment != "all_members":
        raise ValueError(f"unknown segment {segment!r}")
    with pool.connection() as conn:
        rows = conn.execute("SELECT id FROM read.members ORDER BY joined_at, id").fetchall()
    return [r[0] for r in rows]

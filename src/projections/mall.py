"""Read models of the points mall: categories, goods with their stock, redemption orders."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from projections.framework import Envelope, Projector

MALL = "ledger.domain.mall:"
GOODS_COLUMNS = (
    "goods_id, category_id, name, images, description, points_price, cash_price_fen, "
    "published, stock, updated_at"
)
ORDER_COLUMNS = (
    "order_id, out_trade_no, member_id, goods_id, goods_name, quantity, points, cash_fen, "
    "delivery, address, status, tracking_no, out_refund_no, reason, created_at, expires_at, "
    "paid_at, updated_at"
)


class MallProjector(Projector):
    name = "mall"
    topic_prefixes = (MALL,)
    schema_aware = True

    def tables(self) -> Sequence[str]:
        return ("read.mall_categories", "read.mall_goods", "read.mall_orders")

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            name = type(env.event).__qualname__.replace(".", "_")
            handler = getattr(self, "_" + name, None)
            if handler is not None:
                handler(cur, env.event, env.position)

    # -- catalogue --------------------------------------------------------------------------

    def _MallCategory_Created(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO mall_categories (category_id, name, sort, active, position) "
            "VALUES (%s, %s, %s, true, %s) ON CONFLICT (category_id) DO NOTHING",
            (e.originator_id, e.name, e.sort, pos),
        )

    def _MallCategory_Updated(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        for column in ("name", "sort", "active"):
            if column in e.changes:
                cur.execute(
                    f"UPDATE mall_categories SET {column} = %s, position = %s "
                    "WHERE category_id = %s",
                    (e.changes[column], pos, e.originator_id),
                )

    def _MallGoods_Created(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO mall_goods (goods_id, category_id, name, images, description, "
            "points_price, cash_price_fen, published, stock, created_at, updated_at, position) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, false, 0, %s, %s, %s) "
            "ON CONFLICT (goods_id) DO NOTHING",
            (
                e.originator_id,
                e.category_id,
                e.name,
                Jsonb(list(e.images)),
                e.description,
                e.points_price,
                e.cash_price_fen,
                e.timestamp,
                e.timestamp,
                pos,
            ),
        )

    def _MallGoods_Updated(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        for column in (
            "category_id",
            "name",
            "images",
            "description",
            "points_price",
            "cash_price_fen",
        ):
            if column in e.changes:
                value = e.changes[column]
                cur.execute(
                    f"UPDATE mall_goods SET {column} = %s, updated_at = %s, position = %s "
                    "WHERE goods_id = %s",
                    (
                        Jsonb(value) if column == "images" else value,
                        e.timestamp,
                        pos,
                        e.originator_id,
                    ),
                )

    def _goods(self, cur: Cursor[Any], e: Any, pos: int, sets: str, *args: Any) -> None:
        cur.execute(
            f"UPDATE mall_goods SET {sets}, updated_at = %s, position = %s WHERE goods_id = %s",
            (*args, e.timestamp, pos, e.originator_id),
        )

    def _MallGoods_Published(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._goods(cur, e, pos, "published = true")

    def _MallGoods_Withdrawn(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._goods(cur, e, pos, "published = false")

    def _stock(self, cur: Cursor[Any], e: Any, pos: int, sets: str, *args: Any) -> None:
        cur.execute(
            f"UPDATE mall_goods SET {sets}, position = %s WHERE goods_id = %s",
            (*args, pos, e.goods_id if hasattr(e, "goods_id") else self._goods_of(cur, e)),
        )

    @staticmethod
    def _goods_of(cur: Cursor[Any], e: Any) -> UUID | None:
        row = cur.execute(
            "SELECT goods_id FROM mall_goods WHERE stock_id = %s", (e.originator_id,)
        ).fetchone()
        return row[0] if row else None

    def _MallStock_Opened(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._stock(cur, e, pos, "stock = %s, stock_id = %s", e.quantity, e.originator_id)

    def _MallStock_Taken(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._stock(cur, e, pos, "stock = stock - %s", e.quantity)

    def _MallStock_PutBack(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._stock(cur, e, pos, "stock = stock + %s", e.quantity)

    def _MallStock_Counted(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._stock(cur, e, pos, "stock = %s", e.quantity)

    # -- orders -----------------------------------------------------------------------------

    def _MallOrder_Created(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "INSERT INTO mall_orders (order_id, out_trade_no, member_id, goods_id, "
            "goods_name, quantity, points, cash_fen, delivery, address, status, created_at, "
            "expires_at, paid_at, updated_at, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (order_id) DO NOTHING",
            (
                e.originator_id,
                e.originator_id.hex,
                e.member_id,
                e.goods_id,
                e.goods_name,
                e.quantity,
                e.points,
                e.cash_fen,
                e.delivery,
                e.address,
                "paid" if e.cash_fen == 0 else "awaiting_payment",
                e.timestamp,
                e.expires_at,
                e.timestamp if e.cash_fen == 0 else None,
                e.timestamp,
                pos,
            ),
        )

    def _order(self, cur: Cursor[Any], e: Any, pos: int, sets: str, *args: Any) -> None:
        cur.execute(
            f"UPDATE mall_orders SET {sets}, updated_at = %s, position = %s WHERE order_id = %s",
            (*args, e.timestamp, pos, e.originator_id),
        )

    def _MallOrder_Paid(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._order(cur, e, pos, "status = 'paid', paid_at = %s", e.paid_at)

    def _MallOrder_Expired(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._order(cur, e, pos, "status = 'expired'")

    def _MallOrder_Shipped(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._order(cur, e, pos, "status = 'shipped', tracking_no = %s", e.tracking_no)

    def _MallOrder_PickedUp(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._order(cur, e, pos, "status = 'picked_up'")

    def _MallOrder_Cancelled(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        self._order(
            cur,
            e,
            pos,
            "status = 'cancelled', reason = %s, out_refund_no = %s",
            e.reason,
            e.out_refund_no,
        )


# -- queries -------------------------------------------------------------------------------


def goods_list(
    pool: ConnectionPool,
    *,
    published_only: bool,
    category_id: UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    sql = f"SELECT {GOODS_COLUMNS} FROM read.mall_goods WHERE true"
    params: list[Any] = []
    if published_only:
        sql += " AND published"
    if category_id is not None:
        sql += " AND category_id = %s"
        params.append(str(category_id))
    sql += " ORDER BY updated_at DESC, goods_id LIMIT %s OFFSET %s"
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, [*params, limit, offset]).fetchall()


def categories(pool: ConnectionPool, *, active_only: bool) -> list[dict[str, Any]]:
    sql = "SELECT category_id, name, sort, active FROM read.mall_categories"
    if active_only:
        sql += " WHERE active"
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql + " ORDER BY sort, name").fetchall()


def orders(
    pool: ConnectionPool,
    *,
    member_id: UUID | None = None,
    status: str | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    from projections import cursor as cursors

    sql = f"SELECT {ORDER_COLUMNS} FROM read.mall_orders WHERE true"
    params: list[Any] = []
    if member_id is not None:
        sql += " AND member_id = %s"
        params.append(member_id)
    if status:
        sql += " AND status = %s"
        params.append(status)
    if cursor:
        created_at, order_id = cursors.decode(cursor, 2)
        sql += " AND (created_at, order_id) < (%s::timestamptz, %s::uuid)"
        params += [created_at, order_id]
    sql += " ORDER BY created_at DESC, order_id DESC LIMIT %s"
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, [*params, limit + 1]).fetchall()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = (
        cursors.encode(page[-1]["created_at"].isoformat(), page[-1]["order_id"])
        if more and page
        else None
    )
    return {"items": page, "next_cursor": next_cursor}


def due_orders(pool: ConnectionPool, now: datetime, limit: int = 500) -> list[UUID]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT order_id FROM read.mall_orders WHERE status = 'awaiting_payment' "
            "AND expires_at <= %s ORDER BY expires_at LIMIT %s",
            (now, limit),
        ).fetchall()
    return [r[0] for r in rows]

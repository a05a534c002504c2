"""Tickets in plain tables (office.tickets, office.ticket_messages): open, reply, close, list;
images checked by their first bytes and limited to 2 MiB."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from uuid import UUID, uuid4

from psycopg.rows import dict_row

from api.errors import ApiError
from projections import cursor as cursors

MAX_IMAGE_BYTES = 2 * 1024 * 1024
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
TICKET_COLUMNS = (
    "ticket_id, member_id, order_id, subject, status, created_at, updated_at, closed_at"
)


def decode_image(data: str | None) -> tuple[bytes | None, str | None]:
    if data is None:
        return None, None
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_image", "image_base64 is not base64") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise ApiError(
            413, "image_too_large", "An image may be at most 2 MiB", max_bytes=MAX_IMAGE_BYTES
        )
    for magic, media in SIGNATURES:
        if raw.startswith(magic):
            return raw, media
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return raw, "image/webp"
    raise ApiError(415, "unsupported_image", "Send a PNG, JPEG or WebP picture")


class TicketDesk:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def open(
        self,
        member_id: UUID,
        subject: str,
        text: str,
        order_id: UUID | None,
        image_base64: str | None,
    ) -> dict[str, Any]:
        image, media = decode_image(image_base64)
        ticket_id = uuid4()
        with self.pool.connection() as conn, conn.transaction():
            if order_id is not None:
                owner = conn.execute(
                    "SELECT member_id FROM read.fuel_orders WHERE order_id = %s",
                    (order_id,),
                ).fetchone()
                if owner is None or owner[0] != member_id:
                    raise ApiError(404, "not_found", "No such order")
            conn.execute(
                "INSERT INTO office.tickets (ticket_id, member_id, order_id, subject) "
                "VALUES (%s, %s, %s, %s)",
                (ticket_id, member_id, order_id, subject),
            )
            self._add(conn, ticket_id, "member", member_id, text, image, media)
        return self.get(ticket_id)

    def add_message(
        self,
        ticket_id: UUID,
        author: str,
        author_id: UUID | None,
        text: str,
        image_base64: str | None = None,
    ) -> dict[str, Any]:
        image, media = decode_image(image_base64)
        status = "answered" if author == "staff" else "open"
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT status FROM office.tickets WHERE ticket_id = %s FOR UPDATE", (ticket_id,)
            ).fetchone()
            if row is None:
                raise ApiError(404, "not_found", "No such ticket")
            if row[0] == "closed":
                raise ApiError(409, "ticket_closed", "This ticket is closed")
            self._add(conn, ticket_id, author, author_id, text, image, media)
            conn.execute(
                "UPDATE office.tickets SET status = %s, updated_at = now() WHERE ticket_id = %s",
                (status, ticket_id),
            )
        return self.get(ticket_id)

    def close(self, ticket_id: UUID) -> tuple[str, dict[str, Any]]:
        with self.pool.connection() as conn:
            row = conn.execute(
                "UPDATE office.tickets t SET status = 'closed', closed_at = now(), "
                "updated_at = now() FROM office.tickets old "
                "WHERE t.ticket_id = %s AND old.ticket_id = t.ticket_id RETURNING old.status",
                (ticket_id,),
            ).fetchone()
        if row is None:
            raise ApiError(404, "not_found", "No such ticket")
        return row[0], self.get(ticket_id)

    @staticmethod
    def _add(
        conn: Any,
        ticket_id: UUID,
        author: str,
        author_id: UUID | None,
        text: str,
        image: bytes | None,
        media: str | None,
    ) -> None:
        conn.execute(
            "INSERT INTO office.ticket_messages (ticket_id, author, author_id, body, image, "
            "image_type) VALUES (%s, %s, %s, %s, %s, %s)",
            (ticket_id, author, author_id, text, image, media),
        )

    def get(self, ticket_id: UUID) -> dict[str, Any]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            ticket = cur.execute(
                f"SELECT {TICKET_COLUMNS} FROM office.tickets WHERE ticket_id = %s",
                (ticket_id,),
            ).fetchone()
            if ticket is None:
                raise ApiError(404, "not_found", "No such ticket")
            ticket["messages"] = cur.execute(
                "SELECT message_id, author, body, image IS NOT NULL AS has_image, created_at "
                "FROM office.ticket_messages WHERE ticket_id = %s ORDER BY message_id",
                (ticket_id,),
            ).fetchall()
        return ticket

    def list(
        self,
        *,
        member_id: UUID | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        clauses, params = ["TRUE"], []
        if member_id is not None:
            clauses.append("member_id = %s")
            params.append(member_id)
        if status is not None:
            clauses.append("status = %s")
            params.append(status)
        if cursor:
            updated_at, ticket_id = cursors.decode(cursor, 2)
            clauses.append("(updated_at, ticket_id) < (%s::timestamptz, %s::uuid)")
            params += [updated_at, ticket_id]
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                f"SELECT {TICKET_COLUMNS} FROM office.tickets WHERE {' AND '.join(clauses)} "
                "ORDER BY updated_at DESC, ticket_id DESC LIMIT %s",
                [*params, limit + 1],
            ).fetchall()
        page, more = rows[:limit], len(rows) > limit
        token = (
            cursors.encode(page[-1]["updated_at"].isoformat(), page[-1]["ticket_id"])
            if (more and page)
            else None
        )
        return {"items": page, "next_cursor": token}

    def image(self, ticket_id: UUID, message_id: int) -> tuple[bytes, str]:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT image, image_type FROM office.ticket_messages "
                "WHERE ticket_id = %s AND message_id = %s AND image IS NOT NULL",
                (ticket_id, message_id),
            ).fetchone()
        if row is None:
            raise ApiError(404, "not_found", "No such image")
        return bytes(row[0]), row[1]

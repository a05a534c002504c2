"""Customer service (M15) and feedback (T5): a member opens a ticket about an order, with text
and an optional image; staff reply; a ticket is open, answered (staff spoke last) or closed.

Members: /v1/me/tickets, /v1/me/feedback. Staff: /v1/admin/tickets, /v1/admin/feedback.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from api.admin_log import ChangeLog
from api.auth import CurrentMember
from api.errors import ApiError
from api.instants import Instant
from api.permissions import require_permission
from api.ticket_desk import MAX_IMAGE_BYTES, TicketDesk

router = APIRouter(prefix="/v1/me", tags=["customer service"])
admin_router = APIRouter(tags=["admin: customer service"])
Status = Literal["open", "answered", "closed"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=2000)
    image_base64: str | None = Field(
        default=None,
        max_length=(MAX_IMAGE_BYTES + 4096) * 4 // 3,
        description="a PNG, JPEG or WebP picture, base64, at most 2 MiB",
    )


class NewTicket(Message):
    subject: str = Field(min_length=1, max_length=120)
    order_id: UUID | None = None


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=2000)


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)
    order_id: UUID | None = None


def desk(request: Request) -> TicketDesk:
    return TicketDesk(request.app.state.core.read_pool)


Desk = Annotated[TicketDesk, Depends(desk)]
Limit = Annotated[int, Query(ge=1, le=100)]


def _own(desk: TicketDesk, ticket_id: UUID, member_id: UUID) -> dict[str, Any]:
    ticket = desk.get(ticket_id)
    if ticket["member_id"] != member_id:
        raise ApiError(404, "not_found", "No such ticket")
    return ticket


# -- members -----------------------------------------------------------------------------------


@router.post("/tickets", status_code=201)
def open_ticket(body: NewTicket, member: CurrentMember, desk: Desk) -> dict[str, Any]:
    """Ask about an order (or anything): text, and a picture if it helps."""
    return desk.open(member.id, body.subject, body.body, body.order_id, body.image_base64)


@router.get("/tickets")
def my_tickets(
    member: CurrentMember,
    desk: Desk,
    status: Status | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    return desk.list(member_id=member.id, status=status, limit=limit, cursor=cursor)


@router.get("/tickets/{ticket_id}")
def my_ticket(ticket_id: UUID, member: CurrentMember, desk: Desk) -> dict[str, Any]:
    return _own(desk, ticket_id, member.id)


@router.post("/tickets/{ticket_id}/messages", status_code=201)
def follow_up(ticket_id: UUID, body: Message, member: CurrentMember, desk: Desk) -> dict[str, Any]:
    _own(desk, ticket_id, member.id)
    return desk.add_message(ticket_id, "member", member.id, body.body, body.image_base64)


@router.post("/tickets/{ticket_id}/close")
def close_my_ticket(ticket_id: UUID, member: CurrentMember, desk: Desk) -> dict[str, Any]:
    _own(desk, ticket_id, member.id)
    return desk.close(ticket_id)[1]


@router.get("/tickets/{ticket_id}/messages/{message_id}/image")
def my_ticket_image(
    ticket_id: UUID, message_id: int, member: CurrentMember, desk: Desk
) -> Response:
    _own(desk, ticket_id, member.id)
    data, media = desk.image(ticket_id, message_id)
    return Response(data, media_type=media, headers={"X-Content-Type-Options": "nosniff"})


@router.post("/feedback", status_code=201)
def give_feedback(body: Feedback, member: CurrentMember, request: Request) -> dict[str, Any]:
    """A rating from 1 to 5 and a comment, about the service or one order."""
    feedback_id = uuid4()
    with request.app.state.core.read_pool.connection() as conn:
        conn.execute(
            "INSERT INTO office.feedback (feedback_id, member_id, rating, comment, order_id) "
            "VALUES (%s, %s, %s, %s, %s)",
            (feedback_id, member.id, body.rating, body.comment, body.order_id),
        )
    return {"feedback_id": str(feedback_id), **body.model_dump()}


# -- staff -------------------------------------------------------------------------------------


@admin_router.get("/tickets")
def list_tickets(
    desk: Desk,
    _: Any = Depends(require_permission("tickets", "view")),
    status: Status | None = None,
    member_id: UUID | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Most recently active first."""
    return desk.list(member_id=member_id, status=status, limit=limit, cursor=cursor)


@admin_router.get("/tickets/{ticket_id}")
def get_ticket(
    ticket_id: UUID, desk: Desk, _: Any = Depends(require_permission("tickets", "view"))
) -> dict[str, Any]:
    return desk.get(ticket_id)


@admin_router.get("/tickets/{ticket_id}/messages/{message_id}/image")
def ticket_image(
    ticket_id: UUID,
    message_id: int,
    desk: Desk,
    _: Any = Depends(require_permission("tickets", "view")),
) -> Response:
    data, media = desk.image(ticket_id, message_id)
    return Response(data, media_type=media, headers={"X-Content-Type-Options": "nosniff"})


@admin_router.post("/tickets/{ticket_id}/replies", status_code=201)
def reply(
    ticket_id: UUID,
    body: Reply,
    desk: Desk,
    log: ChangeLog,
    _: Any = Depends(require_permission("tickets", "change")),
) -> dict[str, Any]:
    admin = getattr(log.request.state, "admin", None)
    ticket = desk.add_message(ticket_id, "staff", getattr(admin, "admin_id", None), body.body)
    log.change("tickets", "reply", target=str(ticket_id), after={"body": body.body})
    return ticket


@admin_router.post("/tickets/{ticket_id}/close")
def close_ticket(
    ticket_id: UUID,
    desk: Desk,
    log: ChangeLog,
    _: Any = Depends(require_permission("tickets", "change")),
) -> dict[str, Any]:
    before, ticket = desk.close(ticket_id)
    log.change(
        "tickets",
        "close",
        target=str(ticket_id),
        before={"status": before},
        after={"status": "closed"},
    )
    return ticket


@admin_router.get("/feedback")
def list_feedback(
    request: Request,
    _: Any = Depends(require_permission("tickets", "view")),
    rating: Annotated[int | None, Query(ge=1, le=5)] = None,
    since: Instant | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Newest first, with the count and average rating of what matches."""
    clauses, params = ["TRUE"], []
    if rating is not None:
        clauses.append("rating = %s")
        params.append(rating)
    if since is not None:
        clauses.append("created_at >= %s")
        params.append(since)
    where = " AND ".join(clauses)
    with (
        request.app.state.core.read_pool.connection() as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        items = cur.execute(
            "SELECT feedback_id, member_id, rating, comment, order_id, created_at "
            f"FROM office.feedback WHERE {where} ORDER BY created_at DESC LIMIT %s",
            [*params, limit],
        ).fetchall()
        summary = cur.execute(
            f"SELECT count(*) AS count, round(avg(rating), 2) AS average FROM office.feedback "
            f"WHERE {where}",
            params,
        ).fetchone()
    return {"items": items, "summary": summary}

"""Customer service (M15) and feedback (T5) through HTTP: a member's ticket about an order
with a picture, staff replies, the states, size limits, and who may see what."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from office_support import (
    admin_with,
    assert_problem,
    bearer,
    member_token,
    paid_card_order,
    super_token,
)
from orders_support import make_station
from support import project

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def client(core) -> Iterator[TestClient]:
    with TestClient(create_app(core=core, providers=object())) as c:  # type: ignore[arg-type]
        yield c


def test_a_ticket_about_an_order_from_open_to_closed(core, client) -> None:
    order = paid_card_order(core, make_station(core), 15_000)
    project(core)
    member = bearer(member_token(core, UUID(order["member_id"])))
    body = {
        "subject": "Charged but no fuel",
        "body": "Nozzle 1 did not start.",
        "order_id": order["order_id"],
        "image_base64": base64.b64encode(PNG).decode(),
    }
    opened = client.post("/v1/me/tickets", json=body, headers=member)
    assert opened.status_code == 201, opened.text
    ticket = opened.json()
    assert ticket["status"] == "open" and ticket["messages"][0]["has_image"] is True
    ticket_id = ticket["ticket_id"]
    message_id = ticket["messages"][0]["message_id"]
    image = client.get(f"/v1/me/tickets/{ticket_id}/messages/{message_id}/image", headers=member)
    assert image.content == PNG and image.headers["content-type"] == "image/png"

    stranger = bearer(member_token(core))
    assert_problem(client.get(f"/v1/me/tickets/{ticket_id}", headers=stranger), 404, "not_found")
    someone_elses = client.post("/v1/me/tickets", json=body, headers=stranger)
    assert_problem(someone_elses, 404, "not_found")

    _, staff = admin_with(core, "tickets:view", "tickets:change")
    _, viewer = admin_with(core, "tickets:view")
    queue = client.get("/v1/admin/tickets?status=open", headers=bearer(staff)).json()["items"]
    assert ticket_id in [t["ticket_id"] for t in queue]
    reply = {"body": "Refunded in full, sorry."}
    assert_problem(
        client.post(f"/v1/admin/tickets/{ticket_id}/replies", json=reply, headers=bearer(viewer)),
        403,
        "forbidden",
    )
    answered = client.post(
        f"/v1/admin/tickets/{ticket_id}/replies", json=reply, headers=bearer(staff)
    )
    assert answered.status_code == 201 and answered.json()["status"] == "answered"
    seen = client.get(f"/v1/me/tickets/{ticket_id}", headers=member).json()
    assert [m["author"] for m in seen["messages"]] == ["member", "staff"]
    follow = client.post(
        f"/v1/me/tickets/{ticket_id}/messages", json={"body": "Thanks!"}, headers=member
    )
    assert follow.json()["status"] == "open"
    closed = client.post(f"/v1/admin/tickets/{ticket_id}/close", headers=bearer(staff))
    assert closed.json()["status"] == "closed"
    late = client.post(f"/v1/me/tickets/{ticket_id}/messages", json={"body": "x"}, headers=member)
    assert_problem(late, 409, "ticket_closed")
    mine = client.get("/v1/me/tickets", headers=member).json()["items"]
    assert [t["status"] for t in mine] == ["closed"]


def test_bad_tickets_change_nothing(core, client) -> None:
    member_id = uuid4()
    member = bearer(member_token(core, member_id))
    cases = [
        ({"subject": "", "body": "x"}, 422, "invalid_request"),
        ({"subject": "s", "body": "x", "image_base64": "%%%"}, 422, "invalid_image"),
        (
            {"subject": "s", "body": "x", "image_base64": base64.b64encode(b"GIF89a").decode()},
            415,
            "unsupported_image",
        ),
        (
            {
                "subject": "s",
                "body": "x",
                "image_base64": base64.b64encode(PNG + b"\x00" * (2 * 2**20)).decode(),
            },
            413,
            "image_too_large",
        ),
    ]
    for body, status, code in cases:
        assert_problem(client.post("/v1/me/tickets", json=body, headers=member), status, code)
    assert client.get("/v1/me/tickets", headers=member).json()["items"] == []
    admin = bearer(super_token(core))
    assert_problem(client.get("/v1/me/tickets", headers=admin), 403, "forbidden")
    assert client.get("/v1/me/tickets").status_code == 401


def test_feedback_with_a_rating(core, client) -> None:
    member = bearer(member_token(core))
    for rating in (0, 6):
        bad = client.post("/v1/me/feedback", json={"rating": rating}, headers=member)
        assert_problem(bad, 422, "invalid_request")
    tag = uuid4().hex
    for rating in (5, 4):
        given = client.post(
            "/v1/me/feedback", json={"rating": rating, "comment": tag}, headers=member
        )
        assert given.status_code == 201
    _, viewer = admin_with(core, "tickets:view")
    listed = client.get("/v1/admin/feedback?rating=5", headers=bearer(viewer)).json()
    assert tag in [f["comment"] for f in listed["items"]]
    assert listed["summary"]["count"] >= 1 and float(listed["summary"]["average"]) == 5.0

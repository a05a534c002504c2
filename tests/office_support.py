"""Helpers for the partner and back-office tests: tokens for every kind of caller, admins
with chosen permissions, a paid order, problem+json checks."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx

from api.auth import MEMBER_SCOPE, issue_access_token
from api.permissions import ADMIN_SCOPE, SUPER_ADMIN_SCOPE
from infra.bootstrap import Core
from ledger.services.admin_accounts import AdminAccountService

PASSWORD = "Correct-horse-42-battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def super_token(core: Core) -> str:
    return issue_access_token(core.settings, uuid4(), "admin", SUPER_ADMIN_SCOPE)[0]


def member_token(core: Core, member_id: UUID | None = None) -> str:
    return issue_access_token(core.settings, member_id or uuid4(), "member", MEMBER_SCOPE)[0]


def partner_token(core: Core, *station_ids: UUID) -> str:
    scope = [f"station:{s}" for s in station_ids]
    return issue_access_token(core.settings, uuid4(), "partner", scope)[0]


def admin_with(core: Core, *permissions: str, name: str | None = None) -> tuple[UUID, str]:
    """A new admin whose new role grants exactly `permissions`; returns its id and a token."""
    service = AdminAccountService(core.read_pool)
    role = f"r-{uuid4().hex[:12]}"
    service.put_role(role, list(permissions))
    row = service.create(name=name or f"a-{uuid4().hex[:12]}", password=PASSWORD, role=role)
    token = issue_access_token(core.settings, row["admin_id"], "admin", ADMIN_SCOPE)[0]
    return row["admin_id"], token


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


def paid_card_order(core: Core, station_id: UUID, amount_fen: int = 20_000) -> dict[str, Any]:
    """A member tops up the card and pays an order at the station with it."""
    member = uuid4()
    core.wallets.top_up(key=f"{member}-t", member_id=member, amount=amount_fen * 2)
    order = core.orders.create(
        member_id=member,
        key=uuid4().hex,
        station_id=station_id,
        grade="92#",
        nozzle=1,
        amount_fen=amount_fen,
    )
    return core.orders.pay_with_card(order_id=UUID(order["order_id"]), member_id=member)

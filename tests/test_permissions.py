"""Roles and permissions (A8): every /v1/admin route declares one permission, and the whole
matrix of callers x routes answers as the permissions say."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.auth import issue_access_token
from api.main import create_app
from api.permissions import (
    ADMIN_SCOPE,
    CATALOG,
    declared_permission,
    require_permission,
)
from ledger.services.admin_accounts import AdminAccountService
from office_support import (
    PASSWORD,
    admin_with,
    assert_problem,
    bearer,
    member_token,
    partner_token,
    super_token,
)

# Signing in comes before any permission; "who am I" is for every admin.
OPEN_ADMIN_ROUTES = {("POST", "/v1/admin/auth/sign-in"), ("GET", "/v1/admin/auth/me")}
PATH_VALUES = {
    "grade": "92%23",
    "name": "no-such-role",
    "group": "sms",
    "code": "NO_SUCH",
    "message_id": "1",
    "kind": "fuel-orders",
}


def admin_routes(app: Any) -> list[tuple[str, str, Any]]:
    """(method, path, dependant) for every /v1/admin endpoint, included routers and all."""
    found = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        if context.path.startswith("/v1/admin"):
            for method in sorted(context.methods):
                found.append((method, context.path, context.dependant))
    return found


def concrete(path: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return PATH_VALUES.get(name, str(uuid4()))

    return re.sub(r"\{([^}]+)\}", value, path)


@pytest.fixture
def app(core, tmp_path, monkeypatch) -> Iterator[Any]:
    # What a permitted call may write (a backup, an export) goes to a temporary directory.
    monkeypatch.setattr(core.settings, "backup_dir", tmp_path / "backups")
    monkeypatch.setattr(core.settings, "export_dir", tmp_path / "exports")
    application = create_app(core=core, providers=object())  # type: ignore[arg-type]
    with TestClient(application) as client:
        yield application, client


def test_every_admin_route_declares_a_permission(app) -> None:
    application, _ = app
    routes = admin_routes(application)
    assert len(routes) > 40
    missing = [
        f"{method} {path}"
        for method, path, dependant in routes
        if (method, path) not in OPEN_ADMIN_ROUTES and declared_permission(dependant) is None
    ]
    assert missing == [], f"admin routes without require_permission(...): {missing}"


def test_the_matrix_of_callers_and_admin_routes(core, app) -> None:
    application, client = app
    routes = [
        (m, p, declared_permission(d))
        for m, p, d in admin_routes(application)
        if (m, p) not in OPEN_ADMIN_ROUTES and declared_permission(d) is not None
    ]  # an undeclared route fails the test above
    permissions = sorted({f"{r}:{a}" for _, _, (r, a) in routes})
    exactly = {p: admin_with(core, p)[1] for p in permissions}
    all_but = {p: admin_with(core, *[c for c in CATALOG if c != p])[1] for p in permissions}
    callers = {"member": member_token(core), "partner": partner_token(core, uuid4())}
    superuser = super_token(core)
    checked = 0
    for method, path, (resource, action) in routes:
        url = concrete(path)
        permission = f"{resource}:{action}"

        def call(token: str | None, method: str = method, url: str = url) -> Any:
            headers = bearer(token) if token else {}
            kwargs: dict[str, Any] = {"headers": headers}
            if method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {}
            return client.request(method, url, **kwargs)

        assert call(None).status_code == 401, (method, path)
        for who, token in callers.items():
            assert_problem(call(token), 403, "forbidden"), (who, method, path)
        denied = call(all_but[permission])
        assert denied.status_code == 403, (method, path, denied.text)
        assert permission in denied.json()["title"]
        for token in (exactly[permission], superuser):
            allowed = call(token)
            assert allowed.status_code not in (401, 403), (method, path, allowed.text)
        checked += 1
    assert checked == len(routes)


def test_unknown_permissions_are_refused_when_declared() -> None:
    with pytest.raises(ValueError):
        require_permission("stations", "delete")
    with pytest.raises(ValueError):
        require_permission("spaceships", "view")


def test_role_changes_and_disabling_apply_on_the_next_request(core, app) -> None:
    _, client = app
    admin_id, token = admin_with(core, "members:view")
    assert client.get("/v1/admin/members", headers=bearer(token)).status_code == 200
    assert_problem(client.get("/v1/admin/stations", headers=bearer(token)), 403, "forbidden")
    service = AdminAccountService(core.read_pool)
    role = service.get(admin_id)["role"]
    service.put_role(role, ["stations:view"])
    assert client.get("/v1/admin/stations", headers=bearer(token)).status_code == 200
    assert_problem(client.get("/v1/admin/members", headers=bearer(token)), 403, "forbidden")
    service.update(admin_id, disabled=True)
    assert_problem(client.get("/v1/admin/stations", headers=bearer(token)), 403, "forbidden")


def test_an_admin_token_naming_no_admin_needs_the_super_scope(core, app) -> None:
    _, client = app
    nobody = issue_access_token(core.settings, uuid4(), "admin", ADMIN_SCOPE)[0]
    assert_problem(client.get("/v1/admin/stations", headers=bearer(nobody)), 403, "forbidden")
    odd = issue_access_token(core.settings, "not-a-uuid", "admin", ADMIN_SCOPE)[0]
    assert_problem(client.get("/v1/admin/stations", headers=bearer(odd)), 403, "forbidden")
    assert client.get("/v1/admin/stations", headers=bearer(super_token(core))).status_code == 200


def test_me_lists_the_permissions(core, app) -> None:
    _, client = app
    _, token = admin_with(core, "orders:view", "orders:export")
    me = client.get("/v1/admin/auth/me", headers=bearer(token)).json()
    assert me["permissions"] == ["orders:export", "orders:view"] and not me["is_super"]
    catalog = client.get("/v1/admin/permissions", headers=bearer(super_token(core))).json()
    assert "withdrawals:approve" in catalog["permissions"]
    assert PASSWORD  # the helper's password is strong enough for the service

"""Schemathesis over the whole OpenAPI of the in-process app, as a caller of every role:
no 5xx, every status code documented, every body the schema (and media type) it declares.

Each operation gets generated requests from each role (member, partner of a real station,
super-admin, finance); path parameters are sometimes the seeded member's and station's ids so
calls get past "not found" into the handlers. Failures are collected, not shrunk: the test
lists every failing operation with the request that broke it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from scale import pick
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support import project

pytestmark = pytest.mark.proof

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ROLES = ("member", "partner", "admin", "finance")
# Taking a backup runs pg_dump: one is proof enough, and each takes seconds.
SLOW_OPERATIONS = {"POST /v1/admin/backups": 1}


EXAMPLES = pick(ci=5, full=50)
DEADLINE_MS = 10_000  # per generated request; a slower answer is a finding


@dataclass
class Tally:
    calls: int = 0
    server_errors: int = 0
    failures: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def app(proof_world, tmp_path_factory) -> Iterator[Any]:
    # What a permitted call writes (backups, exports) goes to a temporary directory.
    s = proof_world.core.settings
    saved = (s.backup_dir, s.export_dir)
    s.backup_dir = tmp_path_factory.mktemp("backups")
    s.export_dir = tmp_path_factory.mktemp("exports")
    yield proof_world.app
    s.backup_dir, s.export_dir = saved
    shutdown_lifespans()


def seeded_path_values(callers) -> dict[str, str]:
    return {
        "station_id": str(callers.station),
        "member_id": str(callers.member),
        "grade": "92#",
    }


def strategy_for(operation: Any, seeded: dict[str, str]) -> Any:
    # An event stream ends only when asked to: ask it to end at once.
    query = {"max_seconds": 0.1} if "max_seconds" in names_of(operation.query) else None
    generic = operation.as_strategy(query=query)
    known = {k: v for k, v in seeded.items() if k in names_of(operation.path_parameters)}
    if not known:
        return generic
    return st.one_of(generic, operation.as_strategy(path_parameters=known, query=query))


def names_of(parameters: Any) -> set[str]:
    return {p.name for p in parameters}


def exercise(operation: Any, strategy: Any, headers: dict[str, str], tally: Tally) -> None:
    """Send up to EXAMPLES generated requests; record the first failure, if any."""
    examples = SLOW_OPERATIONS.get(operation.label, EXAMPLES)

    @settings(
        max_examples=examples,
        deadline=DEADLINE_MS,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: list, don't minimise
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        tally.calls += 1
        try:
            response = case.call(headers=headers, timeout=DEADLINE_MS / 1000)
        except Exception as exc:  # the app raised: a 500 a real server would have sent
            tally.server_errors += 1
            curl = case.as_curl_command(headers=headers)
            raise AssertionError(f"{type(exc).__name__}: {exc}\n{curl}") from exc
        tally.server_errors += response.status_code >= 500
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is listed
        tally.failures[operation.label] = f"{type(exc).__name__}: {exc}"[:1500]


def test_every_operation_as_every_role(app, callers, proof_core) -> None:
    project(proof_core)  # the seeded member's profile is readable
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    seeded = seeded_path_values(callers)
    tallies = {role: Tally() for role in ROLES}
    started = time.monotonic()
    for operation in operations:
        strategy = strategy_for(operation, seeded)
        for role in ROLES:
            exercise(operation, strategy, callers.headers[role], tallies[role])
    calls = sum(t.calls for t in tallies.values())
    errors = sum(t.server_errors for t in tallies.values())
    failures = {f"{who} {op}": why for who, t in tallies.items() for op, why in t.failures.items()}
    # Whatever the calls stored must project: an event a projector cannot apply stops it.
    try:
        project(proof_core)
    except Exception as exc:  # noqa: BLE001 - listed with the other failures
        failures["projections"] = f"stopped by a stored event: {type(exc).__name__}: {exc}"
    print(
        f"\nschemathesis: {len(operations)} operations x {len(ROLES)} roles, {calls} calls, "
        f"{errors} server errors, projections caught up: {'projections' not in failures} "
        f"({time.monotonic() - started:.0f} s, {EXAMPLES} examples each)"
    )
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in sorted(failures.items()))


# -- what schemathesis found, kept as plain regressions ------------------------------------


def test_nul_characters_are_refused_before_any_handler(proof_world, callers) -> None:
    api, admin = proof_world.api, callers.headers["admin"]
    station = {
        "code": f"N{uuid4().hex[:8]}",
        "name": "Nul\u0000station",
        "address": "",
        "phone": "1",
        "lat_e6": 0,
        "lng_e6": 0,
        "settlement_rate_bps": 0,
    }
    refused = api.post("/v1/admin/stations", json=station, headers=admin)
    assert refused.status_code == 422 and "NUL" in refused.json()["title"], refused.text
    station["name"] = "Back\\u0000slash"  # a backslash and five letters: just text
    assert api.post("/v1/admin/stations", json=station, headers=admin).status_code == 201
    assert api.get("/v1/admin/log?q=%00", headers=admin).status_code == 422
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert api.post("/v1/payments/alipay/notify", content=b"a=%00", headers=form).status_code == 422


def test_instants_and_months_beyond_what_postgresql_takes(proof_world, callers) -> None:
    api = proof_world.api
    member, admin = callers.headers["member"], callers.headers["admin"]
    assert api.get("/v1/me/statements/0000-01", headers=member).status_code == 422
    assert api.get("/v1/me/statements/2026-11", headers=member).status_code == 200
    # an offset PostgreSQL refuses (beyond 15:59) is moved to UTC before it gets there
    since = {"since": "0447-04-24T11:54:51+19:12"}
    csv = api.get("/v1/admin/exports/fuel-orders", params=since, headers=admin)
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode()), csv.text
    edge = {"since": "0001-01-01T00:00:00+10:00"}  # before year 1 in UTC: not an instant
    assert api.get("/v1/admin/exports/fuel-orders", params=edge, headers=admin).status_code == 422


def test_values_a_projector_cannot_store_are_refused(proof_world, callers) -> None:
    """Accepted, these were stored in an event that then stopped the coupons projector."""
    api, admin = proof_world.api, callers.headers["admin"]
    template = {"title": "t", "kind": "fixed", "amount_off_fen": 100, "total_quantity": 10}
    for extra in (
        {"per_member_limit": 3_000_000_000, "valid_days": 3},
        {"valid_from": "2026-11-25T00:00:00+19:12", "valid_until": "2026-12-25T00:00:00+19:12"},
    ):
        headers = admin | {"Idempotency-Key": uuid4().hex}
        answer = api.post("/v1/admin/coupon-templates", json=template | extra, headers=headers)
        assert answer.status_code in (201, 422), answer.text
    project(proof_world.core)  # caught up: nothing stored that a projector refuses

"""Provider statement reconciliation: members pay by WeChat Pay and Alipay through the
simulators, the simulators produce the day's trade bills, finance imports them (fetched,
uploaded, by the CLI, by the daily job); every line is matched, the matched money moves from
the provider to the bank once, exceptions are listed and closed with a note."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import cli.main
import cli.reconcile
from api.auth import issue_access_token
from api.main import create_app
from api.providers_wiring import ProviderClients, build_provider_clients
from infra.bootstrap import Core
from ledger import accounts as acc
from ledger.domain.reconciliation import (
    LedgerMovement,
    LedgerSnapshot,
    Statement,
    StatementLine,
    match_statement,
    outcome_totals,
    settlement_entry,
)
from office_support import admin_with, assert_problem, bearer, member_token
from orders_support import make_station
from projections import reconciliation_queries
from providers.keys import DevKeys
from providers.sim.app import Simulators, build_simulators
from providers.sim.asgi_client import asgi_http_client
from providers.sim.clock import BEIJING, beijing_date
from providers.sim.notifier import asgi_deliver
from providers.sim.wechatpay_bill import render_trade_bill
from rebuild_support import fresh_rebuild_differences
from support import project, read_balances
from workers.context import WorkerContext
from workers.reconciliation import reconcile_due

BASE = "/v1/finance/reconciliations"
EXCEPTIONS = "/v1/admin/reconciliation/exceptions"


def fee(fen: int) -> int:
    """What the simulators charge: 0.6 %, whole fen, half up."""
    return (fen * 6 + 500) // 1000


# -- the matching rules, worked by hand ------------------------------------------------------


def test_matching_rules_worked_by_hand() -> None:
    line = StatementLine
    statement = Statement(
        "wechat",
        (
            line("payment", "T1", "o1", 10_000, 60, "2026-11-24 09:00:00"),
            line("payment", "T2", "o2", 5_000, 30, "2026-11-24 10:00:00"),  # ledger: 4_900
            line("payment", "T9", "o9", 700, 4, "2026-11-24 11:00:00"),  # unknown
            line("refund", "R1", "o1", 2_000, -12, "2026-11-24 12:00:00"),
            line("refund", "R2", "o2", 1_000, -6, "2026-11-24 12:00:00"),  # ledger: CLOSED
            line("payment", "T5", "o5", 800, 5, "2026-11-24 13:00:00"),  # settled yesterday
        ),
        file_sha256="x",
    )
    snapshot = LedgerSnapshot(
        position=42,
        movements=(
            LedgerMovement("payment", "T1", "o1", 10_000, "applied", True),
            LedgerMovement("payment", "T2", "o2", 4_900, "applied", True),
            LedgerMovement("payment", "T3", "o3", 3_000, "late", True),  # not listed
            LedgerMovement("refund", "R1", "o1", 2_000, "SUCCESS", True),
            LedgerMovement("refund", "R2", "o2", 1_000, "CLOSED", False),
            LedgerMovement("payment", "T5", "o5", 800, "applied", False, "2026-11-23"),
        ),
    )
    matching = match_statement(statement, snapshot)
    assert [x.ref for x in matching.matched] == ["T1", "R1"]
    assert {(d.kind, d.ref) for d in matching.discrepancies} == {
        ("amount_differs", "T2"),
        ("missing_in_ledger", "T9"),
        ("refund_differs", "R2"),
        ("already_settled", "T5"),
        ("missing_at_provider", "T3"),
    }
    totals = outcome_totals(statement, matching)
    assert totals["settled_gross_fen"] == 8_000 and totals["matched_fee_fen"] == 48
    assert totals["settled_net_fen"] == 7_952 and totals["exceptions"] == 5
    entry = settlement_entry(uuid4(), "wechat", "2026-11-24", totals)
    assert entry is not None
    assert {leg.account: leg.amount for leg in entry.legs} == {
        "provider:wechat": 8_000,  # held at WeChat (negated): toward zero
        "platform:bank": -7_952,  # arrived at the bank (negated like payouts)
        "platform:provider_fees": -48,
    }
    # The same lines in another order are the same statement.
    shuffled = Statement("wechat", tuple(reversed(statement.lines)), file_sha256="y")
    assert shuffled.content_sha256 == statement.content_sha256


# -- a world: the API and the simulators in-process ------------------------------------------


@dataclass
class World:
    core: Core
    api: TestClient
    sims: Simulators
    http: httpx.Client
    providers: ProviderClients
    keys: DevKeys

    def run(self, coroutine: Any) -> Any:
        return self.http._transport.run(coroutine)  # type: ignore[attr-defined]

    @property
    def finance(self) -> dict[str, str]:
        return bearer(issue_access_token(self.core.settings, uuid4(), "finance")[0])


@pytest.fixture(scope="module")
def keys() -> DevKeys:
    return DevKeys.generate()


@contextlib.contextmanager
def world_on(core: Core, keys: DevKeys) -> Iterator[World]:
    app_ref: dict[str, FastAPI] = {}

    async def deliver(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return await asgi_deliver(app_ref["app"])(url, headers, body)

    s = core.settings
    sims = build_simulators(
        keys,
        merchant_id=s.wechat_pay_mchid,
        appid=s.wechat_appid,
        alipay_app_id=s.alipay_app_id,
        login_secret=s.wechat_app_secret.get_secret_value(),
        deliver=deliver,
    )
    http = asgi_http_client(sims.asgi)
    providers = build_provider_clients(s, http, keys)
    app_ref["app"] = app = create_app(core=core, providers=providers)
    with TestClient(app) as api:
        yield World(core, api, sims, http, providers, keys)
    http.close()


@pytest.fixture
def world(fresh_core, keys) -> Iterator[World]:
    with world_on(fresh_core, keys) as w:
        yield w


def today() -> str:
    return beijing_date(time.time())


def sign_in(w: World, via: str = "wechat") -> dict[str, str]:
    """A member signed in with WeChat, or with Alipay (who alone may pay by Alipay)."""
    if via == "wechat":
        code = w.sims.wechat_login.mint_code(f"o-{uuid4().hex}")
        tokens = w.api.post("/v1/auth/wechat-login", json={"code": code}).json()
    else:
        code = w.sims.alipay.mint_auth_code()["code"]
        tokens = w.api.post("/v1/auth/alipay-login", json={"auth_code": code}).json()
    project(w.core)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def paid_order(w: World, auth: dict[str, str], method: str, amount: int) -> dict[str, Any]:
    body = {"station_id": str(make_station(w.core)), "grade": "92#", "nozzle": 1}
    created = w.api.post(
        "/v1/orders",
        json={**body, "amount_fen": amount},
        headers={**auth, "Idempotency-Key": uuid4().hex},
    )
    assert created.status_code == 201, created.text
    order = created.json()
    paying = w.api.post(
        f"/v1/orders/{order['order_id']}/pay", json={"method": method}, headers=auth
    )
    assert paying.status_code == 200, paying.text
    sim = w.sims.wechatpay if method == "wechat" else w.sims.alipay
    delivered = w.run(sim.pay(order["out_trade_no"]))
    assert [d.status for d in delivered] == [204 if method == "wechat" else 200]
    return {**order, "paid_fen": amount}


def refund(w: World, order: dict[str, Any], method: str, amount: int) -> str:
    out_refund_no = f"R{uuid4().hex[:20]}"
    w.core.orders.refund(
        order_id=UUID(order["order_id"]), out_refund_no=out_refund_no, amount_fen=amount,
        reason="fuel not dispensed", requested_by="station",
    )  # fmt: skip
    out_trade_no = order["out_trade_no"]
    if method == "wechat":
        w.providers.wechat_pay.refund(out_trade_no, out_refund_no, amount, order["paid_fen"])
        w.run(w.sims.wechatpay.settle_refund(out_refund_no))
    else:
        w.providers.alipay.trade_refund(out_trade_no, out_refund_no, amount)
        w.core.orders.record_refund_result(out_refund_no=out_refund_no, state="SUCCESS")
    return out_refund_no


def alipay_statement(w: World, day: str) -> bytes:
    return bytes(w.providers.alipay.download_bill(w.providers.alipay.bill_download_url(day)))


def settlements(core: Core) -> int:
    with core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT count(DISTINCT entry_id) FROM read.journal_lines "
            "WHERE kind = 'provider_settlement'"
        ).fetchone()
    return int(row[0])


# -- clean statements ------------------------------------------------------------------------


def test_clean_statements_match_and_settle_once(world) -> None:
    w, core, day = world, world.core, today()
    auth = sign_in(w)
    first = paid_order(w, auth, "wechat", 20_000)
    paid_order(w, auth, "wechat", 8_800)
    by_alipay = paid_order(w, sign_in(w, "alipay"), "alipay", 15_000)
    refund(w, first, "wechat", 5_000)
    refund(w, by_alipay, "alipay", 3_000)
    project(core)
    before = read_balances(core)
    assert before[(acc.PROVIDER_WECHAT, "CNY")] == -20_000 - 8_800 + 5_000
    assert before[(acc.PROVIDER_ALIPAY, "CNY")] == -15_000 + 3_000

    fetched = w.api.post(
        f"{BASE}/fetch", json={"provider": "wechat", "bill_date": day}, headers=w.finance
    )
    assert fetched.status_code == 201, fetched.text
    wechat = fetched.json()
    wechat_fee = fee(20_000) + fee(8_800) - fee(5_000)
    assert wechat["totals"] | {"exceptions_by_kind": None} == {
        "lines": 3, "payments": 2, "refunds": 1, "payments_fen": 28_800, "refunds_fen": 5_000,
        "fee_fen": wechat_fee, "matched": 3, "matched_payments_fen": 28_800,
        "matched_refunds_fen": 5_000, "matched_fee_fen": wechat_fee,
        "settled_gross_fen": 23_800, "settled_net_fen": 23_800 - wechat_fee, "exceptions": 0,
        "exceptions_by_kind": None,
    }  # fmt: skip
    assert wechat["exceptions"] == [] and wechat["source"] == "fetch"

    # Alipay's statement uploaded as a form; its fees are written as negative income.
    uploaded = w.api.post(
        BASE, params={"provider": "alipay", "bill_date": day}, headers=w.finance,
        files={"file": ("statement.zip", alipay_statement(w, day), "application/zip")},
    )  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    alipay = uploaded.json()
    alipay_fee = fee(15_000) - fee(3_000)
    assert alipay["totals"]["matched"] == 2 and alipay["totals"]["exceptions"] == 0
    assert alipay["totals"]["settled_net_fen"] == 12_000 - alipay_fee

    project(core)
    after = read_balances(core)
    # provider:* holds, negated, what the provider keeps for us: it moves up by the matched
    # total, here to zero; the bank (negated the same way) takes the total less the fees.
    for provider, gross in ((acc.PROVIDER_WECHAT, 23_800), (acc.PROVIDER_ALIPAY, 12_000)):
        assert after[(provider, "CNY")] - before[(provider, "CNY")] == gross
        assert after[(provider, "CNY")] == 0
    net = 23_800 - wechat_fee + 12_000 - alipay_fee
    assert after[(acc.BANK, "CNY")] == -net
    assert after[(acc.PROVIDER_FEES, "CNY")] == -(wechat_fee + alipay_fee)
    trial = w.api.get(
        "/v1/finance/trial-balance", params={"level": "account", "prefix": "platform:"},
        headers=w.finance,
    ).json()  # fmt: skip
    shown = {i["account"]: i["balance"] for i in trial["items"]}
    assert shown[acc.BANK] == -net and shown[acc.PROVIDER_FEES] == -(wechat_fee + alipay_fee)
    whole = w.api.get("/v1/finance/trial-balance", headers=w.finance).json()
    assert whole["balanced"] is True
    assert settlements(core) == 2

    # Again: the same statement (WeChat fetched again; Alipay downloaded again, with another
    # export time in it) is one effect.
    again = w.api.post(
        f"{BASE}/fetch", json={"provider": "wechat", "bill_date": day}, headers=w.finance
    )
    assert again.status_code == 201 and again.json() == wechat
    redownloaded = alipay_statement(w, day)
    raw = w.api.post(
        BASE, params={"provider": "alipay", "bill_date": day}, content=redownloaded,
        headers={**w.finance, "Content-Type": "application/zip"},
    )  # fmt: skip
    assert raw.status_code == 201 and raw.json()["reconciliation_id"] == alipay["reconciliation_id"]
    # Another statement for a day already imported is refused.
    payments, refunds = w.sims.wechatpay.orders.bill_records(day)
    other = render_trade_bill(payments[:1], refunds)
    refused = w.api.post(
        BASE, params={"provider": "wechat", "bill_date": day}, content=other,
        headers={**w.finance, "Content-Type": "text/csv"},
    )  # fmt: skip
    body = assert_problem(refused, 409, "statement_already_imported")
    assert body["reconciliation_id"] == wechat["reconciliation_id"]
    project(core)
    assert settlements(core) == 2 and read_balances(core) == after

    runs = w.api.get(BASE, headers=w.finance).json()
    assert {r["provider"] for r in runs["items"]} == {"wechat", "alipay"}
    one = w.api.get(f"{BASE}/{wechat['reconciliation_id']}", headers=w.finance).json()
    assert one["matched"] == 3 and one["open_exceptions"] == 0 and one["exceptions"] == []
    assert one["settlement_entry_id"] == wechat["settlement_entry_id"]


# -- a statement that differs from the ledger ------------------------------------------------


def test_each_difference_is_an_exception_finance_resolves(world) -> None:
    w, core, day = world, world.core, today()
    auth = sign_in(w)
    kept = paid_order(w, auth, "wechat", 10_000)
    dropped = paid_order(w, auth, "wechat", 12_000)
    changed = paid_order(w, auth, "wechat", 9_000)
    out_refund_no = refund(w, kept, "wechat", 2_000)
    project(core)
    before = read_balances(core)

    payments, refunds = w.sims.wechatpay.orders.bill_records(day)
    by_trade = {p["out_trade_no"]: p for p in payments}
    unknown_payment = {"transaction_id": "4200009999", "out_trade_no": "x1", "total": 500}
    tampered = [
        by_trade[kept["out_trade_no"]],
        by_trade[changed["out_trade_no"]] | {"total": 9_100},
        by_trade[kept["out_trade_no"]] | unknown_payment,
    ]
    refunds = [r | {"refund": 2_500} for r in refunds]
    statement = render_trade_bill(tampered, refunds)
    imported = w.api.post(
        BASE, params={"provider": "wechat", "bill_date": day}, content=statement,
        headers={**w.finance, "Content-Type": "text/csv"},
    )  # fmt: skip
    assert imported.status_code == 201, imported.text
    run = imported.json()
    kinds = {(x["kind"], x["out_trade_no"]) for x in run["exceptions"]}
    assert kinds == {
        ("missing_at_provider", dropped["out_trade_no"]),
        ("amount_differs", changed["out_trade_no"]),
        ("missing_in_ledger", "x1"),
        ("refund_differs", kept["out_trade_no"]),
    }
    differs = next(x for x in run["exceptions"] if x["kind"] == "refund_differs")
    assert (differs["ref"], differs["provider_fen"], differs["ledger_fen"]) == (
        out_refund_no,
        2_500,
        2_000,
    )
    assert run["totals"]["matched"] == 1 and run["totals"]["settled_gross_fen"] == 10_000

    # Yesterday's statement lists the dropped payment (it was paid near midnight) and, again,
    # the one settled today: that one is not settled twice.
    yesterday = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    late = [
        by_trade[o["out_trade_no"]] | {"time": f"{yesterday} 23:59:58"} for o in (dropped, kept)
    ]
    earlier = w.api.post(
        BASE, params={"provider": "wechat", "bill_date": yesterday},
        content=render_trade_bill(late, []), headers={**w.finance, "Content-Type": "text/csv"},
    )  # fmt: skip
    assert earlier.status_code == 201, earlier.text
    assert earlier.json()["totals"]["matched_payments_fen"] == 12_000
    assert [(x["kind"], x["out_trade_no"]) for x in earlier.json()["exceptions"]] == [
        ("already_settled", kept["out_trade_no"])
    ]
    project(core)
    after = read_balances(core)
    assert after[(acc.PROVIDER_WECHAT, "CNY")] - before[(acc.PROVIDER_WECHAT, "CNY")] == 22_000
    assert after[(acc.BANK, "CNY")] == -(22_000 - fee(10_000) - fee(12_000))

    # The back office works the list: open ones, page by page.
    viewer = bearer(admin_with(core, "reconciliation:view", "reconciliation:change")[1])
    seen, cursor = [], None
    while True:
        params = {"state": "open", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = w.api.get(EXCEPTIONS, params=params, headers=viewer).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and {x["state"] for x in seen} == {"open"}
    missing = next(x for x in seen if x["kind"] == "missing_at_provider")
    note = {"note": "listed in the previous day's statement"}
    resolved = w.api.post(
        f"{EXCEPTIONS}/{missing['exception_id']}/resolve", json=note, headers=viewer
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["state"] == "resolved" and resolved.json()["resolved_by"].startswith(
        "admin:"
    )
    same = w.api.post(f"{EXCEPTIONS}/{missing['exception_id']}/resolve", json=note, headers=viewer)
    assert same.status_code == 200 and same.json() == resolved.json()
    other = {"note": "something else"}
    again = w.api.post(
        f"{EXCEPTIONS}/{missing['exception_id']}/resolve", json=other, headers=viewer
    )
    assert_problem(again, 409, "exception_already_resolved")
    assert_problem(
        w.api.post(f"{EXCEPTIONS}/{uuid4()}/resolve", json=note, headers=viewer), 404, "not_found"
    )
    unknown = next(x for x in seen if x["kind"] == "missing_in_ledger")
    by_finance = w.api.post(
        f"{BASE}/exceptions/{unknown['exception_id']}/resolve",
        json={"note": "a test payment of the provider's"}, headers=w.finance,
    )  # fmt: skip
    assert by_finance.status_code == 200 and by_finance.json()["resolved_by"].startswith("finance:")

    project(core)
    still_open = w.api.get(EXCEPTIONS, params={"state": "open"}, headers=viewer).json()["items"]
    closed = w.api.get(EXCEPTIONS, params={"state": "resolved"}, headers=viewer).json()["items"]
    assert len(still_open) == 3 and {x["exception_id"] for x in closed} == {
        missing["exception_id"],
        unknown["exception_id"],
    }
    assert next(x for x in closed if x["kind"] == "missing_at_provider")["note"] == note["note"]
    shown = w.api.get(f"{BASE}/{run['reconciliation_id']}", headers=w.finance).json()
    assert (len(shown["exceptions"]), shown["open_exceptions"]) == (4, 2)
    assert fresh_rebuild_differences(core, ("reconciliation",)) == {}


# -- refusals --------------------------------------------------------------------------------


def test_a_file_that_does_not_add_up_or_is_of_another_day_is_refused(core) -> None:
    day = "2026-03-02"
    payment = {
        "time": f"{day} 08:00:00", "appid": "wx1", "mchid": "1900000001",
        "transaction_id": "4200000001", "out_trade_no": "o1", "openid": "op", "total": 1_000,
        "description": "fuel",
    }  # fmt: skip
    good = render_trade_bill([payment, payment | {"transaction_id": "4200000002"}], [])
    lines = good.decode().split("\r\n")
    edited = "\r\n".join(lines[:1] + lines[2:]).encode()  # one line gone, totals kept
    finance = bearer(issue_access_token(core.settings, uuid4(), "finance")[0])
    with TestClient(create_app(core=core, providers=object())) as api:  # type: ignore[arg-type]

        def upload(content: bytes, provider: str = "wechat", bill_date: str = day) -> Any:
            return api.post(
                BASE, params={"provider": provider, "bill_date": bill_date}, content=content,
                headers={**finance, "Content-Type": "text/csv"},
            )  # fmt: skip

        assert_problem(upload(edited), 422, "statement_invalid")
        assert_problem(upload(b"not,a,bill\r\n"), 422, "statement_invalid")
        assert_problem(upload(b""), 422, "statement_invalid")
        assert_problem(upload(good, "alipay"), 422, "statement_invalid")
        other_day = upload(good, bill_date="2026-03-03")
        assert "not of 2026-03-03" in assert_problem(other_day, 422, "statement_invalid")["title"]
        assert_problem(upload(good, "paypal"), 422, "invalid_request")
        admin = bearer(admin_with(core, "reconciliation:change")[1])
        for who in (admin, bearer(member_token(core))):
            assert_problem(api.post(BASE, params={"provider": "wechat", "bill_date": day},
                                    content=good, headers=who), 403, "forbidden")  # fmt: skip
        assert_problem(api.get(f"{BASE}/{uuid4()}", headers=finance), 404, "not_found")
        with core.read_pool.connection() as conn:
            runs = conn.execute(
                "SELECT count(*) FROM read.reconciliations WHERE bill_date IN (%s, %s)",
                (day, "2026-03-03"),
            ).fetchone()
        assert runs == (0,)


# -- the CLI and the daily job ---------------------------------------------------------------


def test_the_cli_and_the_daily_job(world, tmp_path, monkeypatch) -> None:
    w, core, day = world, world.core, today()
    auth = sign_in(w)
    paid_order(w, auth, "wechat", 6_600)
    paid_order(w, sign_in(w, "alipay"), "alipay", 7_700)
    # A ledger read model far behind the log is said, not matched against.
    monkeypatch.setattr(reconciliation_queries, "MAX_CATCH_UP_PAGES", 0)
    behind = w.api.post(
        f"{BASE}/fetch", json={"provider": "wechat", "bill_date": day}, headers=w.finance
    )
    assert_problem(behind, 409, "not_projected_yet")
    monkeypatch.setattr(reconciliation_queries, "MAX_CATCH_UP_PAGES", 20)

    @contextlib.contextmanager
    def owner_url() -> Iterator[str]:
        yield core.owner_url

    monkeypatch.setattr(cli.main, "owner_url", owner_url)
    bill = tmp_path / "wechat.csv"
    bill.write_bytes(w.providers.wechat_pay.trade_bill(day))
    args = ["reconcile", "import", str(bill), "--provider", "wechat", "--date", day]
    for _ in range(2):  # the second time answers the first import
        result = CliRunner().invoke(cli.main.app, args)
        assert result.exit_code == 0, result.output
        assert f"wechat {day}: 1 lines, 1 matched, exceptions: none" in result.output
    bad = CliRunner().invoke(cli.main.app, [*args[:-1], "2026-02-30"])
    assert bad.exit_code == 2

    # The job, the day after at 11:00 in Beijing: WeChat's is imported, Alipay's is fetched.
    ctx = WorkerContext(core, w.providers.wechat_pay, w.providers.alipay, tts=None, redis=None)  # type: ignore[arg-type]
    tomorrow = datetime.now(BEIJING).date() + timedelta(days=1)
    at = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 11, tzinfo=BEIJING).astimezone(UTC)
    assert reconcile_due(ctx, at) == {"wechat": "already imported", "alipay": "imported"}
    assert reconcile_due(ctx, at) == {"wechat": "already imported", "alipay": "already imported"}
    assert reconcile_due(ctx, at - timedelta(hours=4)) == {"wechat": "not due", "alipay": "not due"}
    too_early = at + timedelta(days=1)  # tomorrow's statements do not exist yet
    assert reconcile_due(ctx, too_early)["wechat"] == "failed: NO_STATEMENT_EXIST"
    assert reconcile_due(ctx, too_early)["wechat"] == "waiting"

    # `ledger reconcile fetch` of a day imported already: one effect.
    clients = build_provider_clients(core.settings, asgi_http_client(w.sims.asgi), w.keys)
    monkeypatch.setattr(cli.reconcile, "provider_clients", lambda: clients)
    fetch = ["reconcile", "fetch", "--provider", "alipay", "--date", day]
    fetched = CliRunner().invoke(cli.main.app, fetch)
    assert fetched.exit_code == 0, fetched.output
    assert f"alipay {day}: 1 lines, 1 matched" in fetched.output
    project(core)
    assert settlements(core) == 2
    assert read_balances(core)[(acc.PROVIDER_ALIPAY, "CNY")] == 0

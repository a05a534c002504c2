"""Finance (issue 8): the journal by account, class and period; the balance sheet; one entry;
the replay audit (CLI, API) finding a tampered read model; the chain verdict; bad
parameters and roles."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import cli.main
from api.auth import issue_access_token
from api.main import create_app
from audit.chain import count_events, seal
from audit.diff import Difference, replay_audit
from audit.replay import replay_balances
from ledger import accounts as acc
from ledger.errors import InsufficientBalance
from ledger.services.top_ups import TopUpService, parse_tiers
from orders_support import Clock, make_station, order_service
from support import nonzero, project, read_balances

PROBLEM = "application/problem+json"


def token(core, role: str, scope: tuple[str, ...] = (), subject: UUID | None = None) -> dict:
    access, _ = issue_access_token(core.settings, subject or uuid4(), role, scope)
    return {"Authorization": f"Bearer {access}"}


class Shop:
    """Drives a station and its members through top-ups, card and provider payments,
    refunds and an expired provider payment that had held part of the card."""

    def __init__(self, core, seed: int = 7) -> None:
        self.core = core
        self.rng = random.Random(seed)
        self.clock = Clock()
        self.orders = order_service(core, self.clock)
        self.top_ups = TopUpService(core.runner, tiers=parse_tiers("50000:2000"), clock=self.clock)
        self.station = make_station(core, rate_bps=100, price=800)
        self.members = [uuid4(), uuid4()]
        self.paid: list[tuple[UUID, int]] = []
        self.n = 0

    def key(self) -> str:
        self.n += 1
        return f"{uuid4().hex[:8]}-{self.n}"

    def top_up(self, member: UUID, amount: int, method: str = "wechat") -> None:
        key = self.key()
        created = self.top_ups.create(member_id=member, key=key, amount_fen=amount, method=method)
        self.orders.confirm_provider_payment(
            provider=method, transaction_id=key, out_trade_no=created["out_trade_no"],
            amount_fen=amount,
        )  # fmt: skip

    def order(self, member: UUID, amount: int, points: int = 0) -> UUID:
        created = self.orders.create(
            member_id=member, key=self.key(), station_id=self.station, grade="92#", nozzle=1,
            amount_fen=amount, points=points,
        )  # fmt: skip
        return UUID(created["order_id"])

    def card(self, member: UUID, amount: int) -> None:
        order_id = self.order(member, amount)
        try:
            self.orders.pay_with_card(order_id=order_id, member_id=member)
        except InsufficientBalance:
            return
        self.paid.append((order_id, amount))

    def provider(self, member: UUID, amount: int, method: str = "alipay") -> None:
        order_id = self.order(member, amount)
        started = self.orders.start_provider_payment(
            order_id=order_id, member_id=member, method=method
        )
        self.orders.confirm_provider_payment(
            provider=method, transaction_id=self.key(), out_trade_no=started["out_trade_no"],
            amount_fen=started["provider_fen"],
        )  # fmt: skip
        self.paid.append((order_id, amount))

    def refund(self, share: int) -> None:
        if not self.paid:
            return
        order_id, amount = self.paid.pop(self.rng.randrange(len(self.paid)))
        self.orders.refund(
            order_id=order_id, out_refund_no=self.key(), amount_fen=max(1, amount // share),
            reason="test", requested_by="station",
        )  # fmt: skip

    def abandoned(self, member: UUID, amount: int, card_fen: int) -> UUID:
        """A provider payment with part of the card held, left to expire: the void reverses
        the hold's entry."""
        order_id = self.order(member, amount)
        self.orders.start_provider_payment(
            order_id=order_id, member_id=member, method="wechat", card_fen=card_fen
        )
        self.clock.advance(minutes=16)
        self.orders.expire(order_id=order_id)
        return order_id

    def random_run(self, steps: int) -> None:
        for member in self.members:
            self.top_up(member, 60_000)
        for _ in range(steps):
            member = self.rng.choice(self.members)
            roll = self.rng.random()
            if roll < 0.2:
                self.top_up(
                    member, self.rng.choice((10_000, 50_000)), self.rng.choice(("wechat", "alipay"))
                )
            elif roll < 0.55:
                self.card(member, self.rng.randint(1, 80) * 100)
            elif roll < 0.8:
                self.provider(member, self.rng.randint(1, 80) * 100)
            else:
                self.refund(self.rng.choice((1, 2, 3)))
            self.clock.advance(minutes=1)


@pytest.fixture
def shop(fresh_core) -> Shop:
    world = Shop(fresh_core)
    world.random_run(30)
    world.top_up(world.members[0], 10_000)
    world.abandoned(world.members[0], 5_000, card_fen=1_000)
    project(fresh_core)
    return world


@pytest.fixture
def client(fresh_core) -> Iterator[TestClient]:
    with TestClient(create_app(core=fresh_core)) as c:
        yield c


def all_pages(client, headers: dict, params: dict) -> list[dict]:
    lines: list[dict] = []
    cursor = None
    while True:
        page = client.get(
            "/v1/finance/journal",
            headers=headers,
            params={**params, "cursor": cursor} if cursor else params,
        ).json()
        lines += page["lines"]
        cursor = page["next_cursor"]
        if not cursor:
            return lines


def journal_rows(core, where: str = "true", params: tuple = ()) -> list[tuple]:
    with core.read_pool.connection() as conn:
        return conn.execute(
            f"SELECT position, leg, account, amount FROM read.journal_lines WHERE {where} "
            "ORDER BY position, leg",
            params,
        ).fetchall()


def test_journal_by_account_class_and_period_in_pages(fresh_core, shop, client) -> None:
    finance = token(fresh_core, "finance")
    card = acc.member_card(shop.members[0])
    lines = all_pages(client, finance, {"account": card, "limit": 2})
    expected = journal_rows(fresh_core, "account = %s", (card,))
    assert len(expected) > 2
    assert [(x["position"], x["leg"], x["account"], x["amount"]) for x in lines] == expected

    cards = all_pages(client, finance, {"account": "member:*:card", "limit": 7})
    assert [(x["position"], x["leg"]) for x in cards] == [
        (p, leg) for p, leg, *_ in journal_rows(fresh_core, "account LIKE 'member:%%:card'")
    ]
    assert {x["account"] for x in cards} == {acc.member_card(m) for m in shop.members}
    providers = all_pages(client, finance, {"account": "provider:*", "limit": 50})
    assert {x["account"] for x in providers} == {"provider:wechat", "provider:alipay"}
    points = all_pages(client, finance, {"account": "member:*:points", "asset": "PTS"})
    assert points and all(x["asset"] == "PTS" for x in points)

    everything = all_pages(client, finance, {"limit": 500})
    assert len(everything) == len(journal_rows(fresh_core))
    start, end = everything[3]["occurred_at"], everything[-3]["occurred_at"]
    period = all_pages(client, finance, {"from": start, "to": end, "limit": 5})
    assert period and all(start <= x["occurred_at"] < end for x in period)
    assert len(period) == sum(1 for x in everything if start <= x["occurred_at"] < end)
    nothing = client.get(
        "/v1/finance/journal",
        headers=finance,
        params={"account": card, "to": "2001-01-01T00:00:00+08:00"},
    ).json()
    assert nothing["lines"] == [] and nothing["next_cursor"] is None


def test_the_balance_sheet_balances_now_and_as_of(fresh_core, shop, client) -> None:
    finance = token(fresh_core, "finance")
    sheet = client.get("/v1/finance/balance-sheet", headers=finance).json()
    assert sheet["balanced"] is True
    assert sheet["totals"]["assets_fen"] == sheet["totals"]["liabilities_and_equity_fen"]
    assert sheet["unclassified"]["lines"] == []
    balances = nonzero(read_balances(fresh_core))
    held = -sum(v for (a, s), v in balances.items() if a.startswith("provider:") and s == "CNY")
    assert sheet["assets"]["total_fen"] == held > 0
    owed = {x["account"]: x["amount_fen"] for x in sheet["liabilities"]["lines"]}
    assert owed["member:*:card"] == sum(
        balances.get((acc.member_card(m), "CNY"), 0) for m in shop.members
    )
    assert owed["station:*:income"] == balances[(acc.station_income(shop.station), "CNY")]
    equity = {x["account"]: x for x in sheet["equity"]["lines"]}
    assert equity["platform:revenue"]["kind"] == "income"
    assert equity["platform:revenue"]["amount_fen"] == balances[("platform:revenue", "CNY")] > 0
    assert equity["platform:marketing"]["amount_fen"] < 0  # the top-up bonuses
    points = sheet["points"]
    assert points["balanced"] and points["outstanding"] == points["issued"] > 0

    middle = sheet["journal_position"] // 2
    earlier = client.get(
        "/v1/finance/balance-sheet", headers=finance, params={"position": middle}
    ).json()
    assert earlier["balanced"] and earlier["journal_position"] == sheet["journal_position"]
    then = journal_rows(fresh_core, "position <= %s AND account LIKE 'provider:%%'", (middle,))
    assert earlier["assets"]["total_fen"] == -sum(amount for *_, amount in then) != held
    admin = token(fresh_core, "admin", ("admin:*",))
    assert client.get("/v1/finance/balance-sheet", headers=admin).status_code == 200


def test_one_entry_with_its_legs_its_event_and_its_reversal(fresh_core, shop, client) -> None:
    finance = token(fresh_core, "finance")
    with fresh_core.read_pool.connection() as conn:
        voided, held = conn.execute(
            "SELECT entry_id, reverses FROM read.journal_lines WHERE reverses IS NOT NULL LIMIT 1"
        ).fetchone()
    hold = client.get(f"/v1/finance/entries/{held}", headers=finance).json()
    assert hold["entry_id"] == str(held) and len(hold["legs"]) >= 2
    assert sum(leg["amount"] for leg in hold["legs"]) == 0
    assert [r["entry_id"] for r in hold["reversed_by"]] == [str(voided)]
    event = hold["event"]
    assert event["position"] == hold["position"] and event["topic"].endswith("FundsHeld")
    assert event["state"]["entry"]["_data_"]["id"] == UUID(str(held)).hex
    void = client.get(f"/v1/finance/entries/{voided}", headers=finance).json()
    assert void["reverses"] == str(held) and void["reversed_by"] == []
    assert sorted(leg["amount"] for leg in void["legs"]) == sorted(
        -leg["amount"] for leg in hold["legs"]
    )
    missing = client.get(f"/v1/finance/entries/{uuid4()}", headers=finance)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_replay_agrees_then_finds_a_tampered_read_model(
    fresh_core, shop, client, monkeypatch
) -> None:
    core = fresh_core
    report = replay_audit(core.owner_url)
    assert report.agree, report.differences
    assert report.accounts == len(replay_balances(core.app)) > 5
    assert report.events > 30 and report.replayed_to == report.positions["account_balances"]
    assert nonzero(replay_balances(core.app)) == nonzero(read_balances(core))

    card = acc.member_card(shop.members[1])
    points = acc.member_points(shop.members[1])
    truth = replay_balances(core.app)
    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE read.account_balances SET balance = balance + 1 WHERE account = %s", (card,)
        )
        conn.execute(
            "UPDATE read.points_lots SET points = points - 3 WHERE member_id = %s",
            (shop.members[1],),
        )
    found = replay_audit(core.owner_url)
    assert not found.agree
    assert set(found.differences) == {
        Difference(card, "CNY", "account_balances", truth[(card, "CNY")], truth[(card, "CNY")] + 1),
        Difference(
            points, "PTS", "points_lots", truth[(points, "PTS")], truth[(points, "PTS")] - 3
        ),
    }

    @contextlib.contextmanager
    def owner_url() -> Iterator[str]:
        yield core.owner_url

    monkeypatch.setattr(cli.main, "owner_url", owner_url)
    result = CliRunner().invoke(cli.main.app, ["audit", "replay"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "account_balances" in result.output and str(truth[(card, "CNY")] + 1) in result.output

    audit = client.post("/v1/finance/audits/replay", headers=token(core, "finance")).json()
    assert audit["agree"] is False and audit["differences_total"] == 2
    assert {d["account"] for d in audit["differences"]} == {card, points}

    with psycopg.connect(core.owner_url, autocommit=True) as conn:  # put it right
        conn.execute(
            "UPDATE read.account_balances SET balance = balance - 1 WHERE account = %s", (card,)
        )
        conn.execute(
            "UPDATE read.points_lots SET points = points + 3 WHERE member_id = %s",
            (shop.members[1],),
        )
    again = CliRunner().invoke(cli.main.app, ["audit", "replay"])
    assert again.exit_code == 0 and f"{report.accounts} accounts agree" in again.output


def head(core) -> int:
    with psycopg.connect(core.owner_url) as conn:
        return conn.execute("SELECT max(notification_id) FROM ledger_events").fetchone()[0]


def test_replay_compares_each_read_model_at_its_own_position(fresh_core, shop) -> None:
    """Events the projectors have not reached yet are not differences."""
    shop.top_up(shop.members[0], 10_000)  # logged, not projected
    report = replay_audit(fresh_core.owner_url)
    assert report.agree
    assert report.replayed_to == max(report.positions.values()) < head(fresh_core)


def test_the_chain_verdict_through_the_api(fresh_core, shop, client) -> None:
    with psycopg.connect(fresh_core.app_url, autocommit=True) as conn:
        while seal(conn):
            pass
    sealed = count_events(fresh_core.owner_url)
    shop.top_up(shop.members[0], 10_000)  # not sealed yet
    verdict = client.get("/v1/finance/audits/verify", headers=token(fresh_core, "finance")).json()
    assert verdict["ok"] is True and verdict["checked"] == sealed
    assert verdict["unsealed"] == count_events(fresh_core.owner_url) - sealed > 0
    assert verdict["first_bad_position"] is None
    admin = token(fresh_core, "admin", ("admin:*",))
    assert client.get("/v1/finance/audits/verify", headers=admin).json()["ok"] is True


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/finance/journal", {"from": "2026-11-24T08:00:00"}),  # no offset
        ("/v1/finance/journal", {"from": "2026-11-25T00:00:00Z", "to": "2026-11-24T00:00:00Z"}),
        ("/v1/finance/journal", {"account": "member:1 OR 1=1"}),
        ("/v1/finance/journal", {"account": "member:**:card"}),
        ("/v1/finance/journal", {"limit": 0}),
        ("/v1/finance/journal", {"asset": "USD"}),
        ("/v1/finance/balance-sheet", {"position": 1, "as_of": "2026-11-24T08:00:00Z"}),
        ("/v1/finance/balance-sheet", {"as_of": "2026-11-24T08:00:00"}),
        ("/v1/finance/balance-sheet", {"position": -1}),
        ("/v1/finance/entries/not-a-uuid", {}),
    ],
)
def test_bad_parameters_are_422_problems(core, path: str, params: dict) -> None:
    with TestClient(create_app(core=core)) as client:
        response = client.get(path, headers=token(core, "finance"), params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "invalid_request"


def test_a_foreign_cursor_is_refused(core) -> None:
    with TestClient(create_app(core=core)) as client:
        response = client.get(
            "/v1/finance/journal", headers=token(core, "finance"), params={"cursor": "bm90LW91cnM"}
        )
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"


def test_balance_sheet_ahead_of_the_journal_is_a_409(core) -> None:
    with TestClient(create_app(core=core)) as client:
        response = client.get(
            "/v1/finance/balance-sheet", headers=token(core, "finance"), params={"position": 10**12}
        )
    assert response.status_code == 409 and response.json()["code"] == "not_projected_yet"


READS = [
    "/v1/finance/journal",
    "/v1/finance/balance-sheet",
    f"/v1/finance/entries/{uuid4()}",
    "/v1/finance/trial-balance",
    "/v1/finance/accounts/platform:revenue",
    "/v1/finance/audits/verify",
]


def test_only_finance_reads_and_only_finance_audits(core) -> None:
    member = token(core, "member")
    partner = token(core, "partner", (f"station:{uuid4()}",))
    admin = token(core, "admin", ("admin:*",))
    with TestClient(create_app(core=core)) as client:
        for path in READS:
            assert client.get(path).status_code == 401
            for who in (member, partner):
                response = client.get(path, headers=who)
                assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
            assert client.get(path, headers=admin).status_code in (200, 404)
        for who in (member, partner, admin):
            assert client.post("/v1/finance/audits/replay", headers=who).status_code == 403


def test_account_classes_star_the_owner(core) -> None:
    cases = {
        "member:0f1e:card": "member:*:card",
        "member:0f1e:commission:pending": "member:*:commission:pending",
        "member:0f1e:points:held": "member:*:points:held",
        "station:ab-c:available": "station:*:available",
        "platform:commission_debt:0f1e": "platform:commission_debt:*",
        "platform:revenue": "platform:revenue",
        "provider:wechat": "provider:wechat",
        "points:issued": "points:issued",
    }
    with core.read_pool.connection() as conn:
        got = conn.execute(
            "SELECT a, read.account_class(a) FROM unnest(%s::text[]) a", (list(cases),)
        ).fetchall()
    assert dict(got) == cases

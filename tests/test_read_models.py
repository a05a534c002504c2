"""Read models (issue 5): after random command sequences every live read model equals a fresh
rebuild into the shadow schema and the totals the domain computes; the report endpoints
through HTTP with minted tokens."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from api.auth import issue_access_token
from api.main import create_app
from audit.replay import replay_balances
from ledger import accounts as acc
from ledger.domain.fuel_order import FuelOrder
from ledger.errors import InsufficientBalance
from ledger.services.members import MemberService
from ledger.services.top_ups import TopUpService
from orders_support import Clock, make_station, order_service
from projections.station_figures import BUSINESS_TZ
from rebuild_support import fresh_rebuild_differences, project_live
from support import nonzero, project, read_balances

EXAMPLES = max(4, int(os.environ.get("LEDGER_HYPOTHESIS_EXAMPLES", "500")) // 50)

command = st.one_of(
    st.tuples(st.just("top_up"), st.integers(0, 2), st.sampled_from([10_000, 50_000, 100_000])),
    st.tuples(st.just("card"), st.integers(0, 2), st.integers(0, 1), st.integers(1, 300)),
    st.tuples(st.just("provider"), st.integers(0, 2), st.integers(0, 1), st.integers(1, 300)),
    st.tuples(st.just("refund"), st.integers(0, 50), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("expire"), st.integers(0, 2), st.integers(0, 1)),
    st.tuples(st.just("sign_in"), st.integers(0, 2)),
    st.tuples(st.just("confirm"), st.integers(0, 50)),
)


class World:
    """What the test did, so that totals can be checked against the domain."""

    def __init__(self, core) -> None:
        self.core = core
        self.clock = Clock()
        self.orders = order_service(core, self.clock)
        self.top_ups = TopUpService(core.runner, tiers=(), clock=self.clock)
        self.paid: list[UUID] = []
        self.n = 0

    def run(self, cmd: tuple, members: list[UUID], stations: list[UUID]) -> None:
        self.n += 1
        key = f"{uuid4().hex[:8]}-{self.n}"
        kind = cmd[0]
        if kind == "top_up":
            created = self.top_ups.create(
                member_id=members[cmd[1]], key=key, amount_fen=cmd[2], method="wechat"
            )
            self.orders.confirm_provider_payment(
                provider="wechat", transaction_id=key, out_trade_no=created["out_trade_no"],
                amount_fen=cmd[2],
            )  # fmt: skip
        elif kind in ("card", "provider", "expire"):
            member, station = members[cmd[1]], stations[cmd[2]]
            amount = cmd[3] * 100 if kind != "expire" else 5_000
            order = self.orders.create(
                member_id=member, key=key, station_id=station, grade="92#", nozzle=1,
                amount_fen=amount,
            )  # fmt: skip
            order_id = UUID(order["order_id"])
            if kind == "expire":
                self.clock.advance(minutes=16)
                self.orders.expire(order_id=order_id)
            elif kind == "card":
                try:
                    self.orders.pay_with_card(order_id=order_id, member_id=member)
                except InsufficientBalance:  # the order stays created
                    return
                self.paid.append(order_id)
            else:
                started = self.orders.start_provider_payment(
                    order_id=order_id, member_id=member, method="alipay"
                )
                self.orders.confirm_provider_payment(
                    provider="alipay", transaction_id=key, out_trade_no=started["out_trade_no"],
                    amount_fen=started["provider_fen"],
                )  # fmt: skip
                self.paid.append(order_id)
        elif kind == "refund" and self.paid:
            order = self.order(self.paid[cmd[1] % len(self.paid)])
            left = order.amount_fen - sum(order.refunded.values())
            if left > 0:
                self.orders.refund(
                    order_id=order.id, out_refund_no=key, amount_fen=max(1, left // cmd[2]),
                    reason="test", requested_by="station",
                )  # fmt: skip
        elif kind == "sign_in":
            MemberService(self.core.runner).sign_in(f"openid-{members[cmd[1]]}", None)
        elif kind == "confirm" and self.paid:
            order = self.order(self.paid[cmd[1] % len(self.paid)])
            if order.status in ("paid", "partially_refunded"):
                self.orders.confirm(order_id=order.id, station_id=order.station_id)
        self.clock.advance(minutes=1)

    def order(self, order_id: UUID) -> FuelOrder:
        found = self.core.app.repository.get(order_id)
        assert isinstance(found, FuelOrder)
        return found


def check_domain_totals(core, world: World) -> None:
    assert nonzero(read_balances(core)) == nonzero(replay_balances(core.app))
    orders = [world.order(o) for o in world.paid]
    with core.read_pool.connection() as conn:
        daily = conn.execute(
            "SELECT coalesce(sum(orders), 0), coalesce(sum(amount_fen), 0), "
            "coalesce(sum(refunded_fen), 0), coalesce(sum(fee_fen - refunded_fee_fen), 0) "
            "FROM read.station_daily"
        ).fetchone()
        platform = conn.execute(
            "SELECT coalesce(sum(orders), 0), coalesce(sum(amount_fen), 0) FROM read.platform_daily"
        ).fetchone()
        visits = conn.execute("SELECT coalesce(sum(visits), 0) FROM read.station_customers")
        visits_total = visits.fetchone()[0]
    fees = sum(sum(o.fees.values()) - sum(o.refunded_fees.values()) for o in orders)
    assert tuple(daily) == (
        len(orders),
        sum(o.amount_fen for o in orders),
        sum(sum(o.refunded.values()) for o in orders),
        fees,
    )
    assert tuple(platform) == (len(orders), sum(o.amount_fen for o in orders))
    assert visits_total == len(orders)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # shrinking a DB history is slow
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(commands=st.lists(command, min_size=1, max_size=14), page=st.integers(1, 7))
def test_every_read_model_equals_a_fresh_rebuild_and_the_domain(fresh_core, commands, page):
    core = fresh_core
    world = core.extras.setdefault("world", World(core))
    members = [uuid4() for _ in range(3)]
    stations = [make_station(core, rate_bps=rate) for rate in (100, 37)]
    for member in members:
        core.wallets.top_up(key=f"{member}-seed", member_id=member, amount=20_000, bonus=500)
    for cmd in commands:
        world.run(cmd, members, stations)
    project_live(core, page_size=page)
    assert fresh_rebuild_differences(core) == {}
    check_domain_totals(core, world)


# -- endpoints --------------------------------------------------------------------------------


def token(core, subject, role: str, scope: tuple[str, ...] = ()) -> dict[str, str]:
    access, _ = issue_access_token(core.settings, subject, role, scope)
    return {"Authorization": f"Bearer {access}"}


@pytest.fixture
def shop(core):
    """A station, a member who tops up and buys fuel twice (one refunded in part)."""
    world = World(core)
    station = make_station(core, rate_bps=100, price=800)
    member = uuid4()
    core.wallets.top_up(key=f"{member}-t", member_id=member, amount=30_000, bonus=1_000)
    world.run(("card", 0, 0, 100), [member], [station])
    world.run(("provider", 0, 0, 50), [member], [station])
    world.run(("refund", 0, 2), [member], [station])
    project(core)
    return {"station": station, "member": member, "world": world}


def test_partner_figures_orders_and_habits(core, shop) -> None:
    station, member = shop["station"], shop["member"]
    today = datetime.now(BUSINESS_TZ).date()
    partner = token(core, uuid4(), "partner", (f"station:{station}",))
    with TestClient(create_app(core=core)) as client:
        base = f"/v1/partner/stations/{station}"
        figures = client.get(f"{base}/figures", headers=partner).json()
        totals = figures["totals"]
        assert totals["orders"] == 2 and totals["amount_fen"] == 15_000
        assert totals["fee_fen"] == 150 and totals["income_fen"] == 14_850
        assert totals["refunds"] == 1 and totals["refunded_fen"] == 5_000
        assert totals["net_income_fen"] == 14_850 - 4_950
        assert [d["day"] for d in figures["by_day"]] == [today.isoformat()]
        assert {m["method"]: m["orders"] for m in figures["by_method"]} == {
            "alipay": 1,
            "card": 1,
        }
        income = figures["income"]
        assert income["pending_fen"] == 14_850 - 4_950 and income["available_fen"] == 0

        listed = client.get(f"{base}/orders", headers=partner, params={"limit": 1}).json()
        assert len(listed["items"]) == 1 and listed["next_cursor"]
        rest = client.get(
            f"{base}/orders", headers=partner, params={"limit": 1, "cursor": listed["next_cursor"]}
        ).json()
        assert {listed["items"][0]["amount_fen"], rest["items"][0]["amount_fen"]} == {
            10_000,
            5_000,
        }
        big = client.get(f"{base}/orders", headers=partner, params={"min_amount_fen": 6_000})
        assert [o["amount_fen"] for o in big.json()["items"]] == [10_000]
        refunded = client.get(
            f"{base}/orders", headers=partner, params={"status": "partially_refunded"}
        ).json()["items"]
        assert len(refunded) == 1 and refunded[0]["refunded_fen"] == 5_000
        bad = client.get(
            f"{base}/orders", headers=partner, params={"min_amount_fen": 9, "max_amount_fen": 1}
        )
        assert bad.status_code == 422

        habits = client.get(f"{base}/habits", headers=partner).json()
        assert habits["orders"] == 2 and habits["new_customers"] == 1
        assert habits["returning_orders"] == 1 and habits["average_amount_fen"] == 7_500
        assert habits["customers"]["customers"] == 1 and habits["customers"]["visits_2_3"] == 1
        assert habits["preferred_grades"] == [{"grade": "92#", "customers": 1}]
        assert sum(h["orders"] for h in habits["hours"]) == 2

        other = token(core, uuid4(), "partner", (f"station:{uuid4()}",))
        for path in ("figures", "orders", "habits"):
            assert client.get(f"{base}/{path}", headers=other).status_code == 403
        member_token = token(core, member, "member")
        assert client.get(f"{base}/figures", headers=member_token).status_code == 403
        admin = token(core, uuid4(), "admin")
        assert client.get(f"{base}/figures", headers=admin).status_code == 200
        missing = client.get(f"/v1/partner/stations/{uuid4()}/figures", headers=admin)
        assert missing.status_code == 404
        backwards = {"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()}
        assert client.get(f"{base}/figures", headers=admin, params=backwards).status_code == 422


def test_member_statement_adds_up(core, shop) -> None:
    member = shop["member"]
    month = datetime.now(BUSINESS_TZ).strftime("%Y-%m")
    with TestClient(create_app(core=core)) as client:
        headers = token(core, member, "member")
        statement = client.get(f"/v1/me/statements/{month}", headers=headers).json()
        assert statement["totals"]["fuel_orders"] == 2
        assert statement["totals"]["fuel_fen"] == 15_000
        assert statement["totals"]["refunds"] == 1
        accounts = {(a["account"], a["asset"]): a for a in statement["accounts"]}
        card = accounts[("card", "CNY")]
        assert card["opening"] == 0 and card["closing"] == 30_000 - 10_000 + 5_000
        for a in statement["accounts"]:
            moved = sum(
                m["changes"].get(f"{a['account']}|{a['asset']}", 0) for m in statement["movements"]
            )
            assert a["opening"] + moved == a["closing"]
        assert client.get("/v1/me/statements/2026-13", headers=headers).status_code == 422
        earlier = client.get("/v1/me/statements/2001-01", headers=headers).json()
        assert earlier["movements"] == [] and earlier["totals"]["fuel_orders"] == 0
        assert client.get(f"/v1/me/statements/{month}").status_code == 401


def test_admin_figures(core, shop) -> None:
    with TestClient(create_app(core=core)) as client:
        admin = token(core, uuid4(), "admin", ("admin:*",))
        figures = client.get("/v1/admin/figures", headers=admin).json()
        assert figures["totals"]["orders"] >= 2
        top = figures["top_stations"]
        amounts = [s["amount_fen"] for s in top]
        assert amounts == sorted(amounts, reverse=True) and len(top) <= 10
        ours = [s for s in top if s["station_id"] == str(shop["station"])]
        assert ours or min(amounts) >= 15_000  # other tests' stations may sell more
        assert all(s["amount_fen"] == 15_000 for s in ours)
        assert figures["members"]["total"] >= 0
        partner = token(core, uuid4(), "partner", (f"station:{shop['station']}",))
        assert client.get("/v1/admin/figures", headers=partner).status_code == 403


def test_trial_balance_and_account_as_of(core, shop) -> None:
    station = shop["station"]
    income = acc.station_income(station)
    with TestClient(create_app(core=core)) as client:
        finance = token(core, uuid4(), "finance")
        now = client.get("/v1/finance/trial-balance", headers=finance).json()
        assert now["balanced"] is True
        assert {t["asset"]: t["net"] for t in now["totals"]} == {"CNY": 0, "PTS": 0}
        assert any(i["account"] == "station:*:income" for i in now["items"])

        account = client.get(f"/v1/finance/accounts/{income}", headers=finance).json()
        assert account["balances"] == {"CNY": 14_850 - 4_950}
        lines = account["lines"]
        assert lines[0]["balance_after"] == 14_850 - 4_950
        first = min(line["position"] for line in lines)
        before = client.get(
            f"/v1/finance/accounts/{income}", headers=finance, params={"position": first - 1}
        ).json()
        assert before["balances"] == {} and before["lines"] == []
        at_first = client.get(
            f"/v1/finance/accounts/{income}", headers=finance, params={"position": first}
        ).json()
        assert at_first["balances"] == {"CNY": 9_900}
        paged = client.get(
            f"/v1/finance/accounts/{income}", headers=finance, params={"limit": 1}
        ).json()
        following = client.get(
            f"/v1/finance/accounts/{income}", headers=finance,
            params={"limit": 50, "cursor": paged["next_cursor"]},
        ).json()  # fmt: skip
        assert [x["balance_after"] for x in paged["lines"] + following["lines"]] == [
            x["balance_after"] for x in lines
        ]
        old = client.get(
            "/v1/finance/trial-balance", headers=finance,
            params={"position": first, "level": "account", "prefix": f"station:{station}"},
        ).json()  # fmt: skip
        assert old["items"] == [{"account": income, "asset": "CNY", "balance": 9_900}]
        instant = lines[-1]["occurred_at"]
        by_time = client.get(
            f"/v1/finance/accounts/{income}", headers=finance, params={"as_of": instant}
        ).json()
        assert by_time["balances"] == {"CNY": 9_900}
        ahead = client.get(
            "/v1/finance/trial-balance", headers=finance, params={"position": 10**12}
        )
        assert ahead.status_code == 409
        both = {"position": 1, "as_of": instant}
        assert (
            client.get("/v1/finance/trial-balance", headers=finance, params=both).status_code == 422
        )
        member = token(core, shop["member"], "member")
        assert client.get("/v1/finance/trial-balance", headers=member).status_code == 403

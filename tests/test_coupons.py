"""Coupons: worked examples (every account and every coupon after each step), stacking,
concurrency (total quantity, double redemption), the invariants under random sequences,
and the HTTP endpoints of members and the back office."""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from api.auth import MEMBER_SCOPE, issue_access_token
from api.main import create_app
from api.permissions import SUPER_ADMIN_SCOPE
from coupon_support import coupon_services, give, new_template, race, register
from infra.bootstrap import build_core
from ledger import accounts as acc
from ledger.domain.coupon_template import CouponTerms
from ledger.errors import (
    CouponLimitReached,
    CouponNotApplicable,
    CouponsExhausted,
    InvalidCouponTemplate,
    OrderNotPayable,
)
from ledger.services.campaigns import CampaignService
from orders_support import Clock, make_station
from projections import coupons as coupon_queries
from rebuild_support import fresh_rebuild_differences, project_live
from support import journal_sums, nonzero, project, read_balances

EXAMPLES = max(20, int(os.environ.get("LEDGER_HYPOTHESIS_EXAMPLES", "500")) // 20)


def state_of(core, coupon_id: UUID) -> str:
    return core.app.repository.get(coupon_id).state


def balances(core, *owners: str) -> dict:
    project(core)
    out: dict = {}
    for owner in owners:
        out.update(nonzero(read_balances(core, owner)))
    return out


# -- the discount rules ------------------------------------------------------------------------


def test_discounts_are_integer_and_round_down() -> None:
    percent = CouponTerms("8% off", "percent", percent_off_bps=800, max_discount_fen=1_500)
    assert percent.discount_for(9_999) == 799  # 799.92 fen rounds down to the fen
    assert percent.discount_for(20_000) == 1_500  # 1,600 capped at 1,500
    threshold = CouponTerms("50 off 300", "threshold", amount_off_fen=5_000, min_amount_fen=30_000)
    assert (threshold.discount_for(29_999), threshold.discount_for(30_000)) == (0, 5_000)
    with pytest.raises(InvalidCouponTemplate):
        CouponTerms("bad", "threshold", amount_off_fen=5_000, min_amount_fen=5_000).validated()
    with pytest.raises(InvalidCouponTemplate):
        CouponTerms("bad", "percent", percent_off_bps=10_000).validated()
    with pytest.raises(InvalidCouponTemplate):  # a station funds its own station only
        CouponTerms(
            "bad",
            "fixed",
            amount_off_fen=1,
            funder_account="station:x:marketing",
            station_ids=("y",),
        ).validated()


# -- worked examples ---------------------------------------------------------------------------


def test_issue_quote_lock_pay_expire_refund_and_sweep(core) -> None:
    clock = Clock()
    coupons, orders = coupon_services(core, clock)
    station, elsewhere = make_station(core, rate_bps=100), make_station(core)
    [m] = register(core)
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=50_000)
    project(core)
    marketing = read_balances(core).get((acc.PLATFORM_MARKETING, "CNY"), 0)
    ten_off_100 = new_template(
        coupons, title="10 off 100", kind="threshold", amount_off_fen=1_000, min_amount_fen=10_000
    )
    eight_pct = new_template(
        coupons,
        title="8% off, at most 15",
        kind="percent",
        percent_off_bps=800,
        max_discount_fen=1_500,
        station_ids=[station],
        funder_station_id=station,
    )
    diesel_only = new_template(coupons, title="5 off diesel", grades=["0#"], amount_off_fen=500)
    other_station = new_template(coupons, title="other", station_ids=[elsewhere])
    a, b = give(coupons, ten_off_100, m), give(coupons, eight_pct, m)
    give(coupons, diesel_only, m)
    give(coupons, other_station, m)
    # issuing is a promise: no money moved
    assert balances(core, f"station:{station}") == {}
    assert read_balances(core).get((acc.PLATFORM_MARKETING, "CNY"), 0) == marketing

    q = orders.quote(member_id=m, station_id=station, grade="92#", nozzle=1, amount_fen=20_000)
    assert {c["coupon_id"]: c["discount_fen"] for c in q["applicable_coupons"]} == {
        str(a): 1_000,
        str(b): 1_500,
    }
    assert q["best_coupon_id"] == str(b) and q["coupon_fen"] == 0  # suggested, not applied
    small = orders.quote(member_id=m, station_id=station, grade="92#", nozzle=1, amount_fen=9_000)
    assert (
        small["best_coupon_id"] == str(b) and small["applicable_coupons"][0]["discount_fen"] == 720
    )

    # order 1 with the station's 8%: the coupon is locked with it
    o1 = orders.create(
        member_id=m,
        key="o1",
        station_id=station,
        grade="92#",
        nozzle=1,
        amount_fen=20_000,
        coupon_id=str(b),
    )
    assert (o1["coupon_fen"], o1["payable_fen"]) == (1_500, 18_500)
    assert state_of(core, b) == "locked"
    again = orders.quote(member_id=m, station_id=station, grade="92#", nozzle=1, amount_fen=20_000)
    assert again["best_coupon_id"] == str(a)
    with pytest.raises(CouponNotApplicable):
        orders.create(
            member_id=m,
            key="o1-bis",
            station_id=station,
            grade="92#",
            nozzle=1,
            amount_fen=20_000,
            coupon_id=str(b),
        )

    # paid: redeemed; the station's marketing pays its coupon, the station earns the gross
    orders.pay_with_card(order_id=UUID(o1["order_id"]), member_id=m)
    assert state_of(core, b) == "redeemed"
    assert balances(core, f"station:{station}") == {
        (acc.station_income(station), "CNY"): 20_000 - 200,
        (acc.station_marketing(station), "CNY"): -1_500,
    }
    assert balances(core, f"member:{m}")[(acc.member_card(m), "CNY")] == 31_500

    # order 2 with "10 off 100" expires unpaid: the coupon is held again
    o2 = orders.create(
        member_id=m,
        key="o2",
        station_id=station,
        grade="92#",
        nozzle=1,
        amount_fen=15_000,
        coupon_id=str(a),
    )
    assert state_of(core, a) == "locked"
    clock.advance(minutes=16)
    orders.expire(order_id=UUID(o2["order_id"]))
    assert state_of(core, a) == "held"

    # a full refund of order 1 restores the coupon (still valid) and the station's money
    orders.refund(
        order_id=UUID(o1["order_id"]),
        out_refund_no=f"{m}-r1",
        amount_fen=20_000,
        reason="not dispensed",
        requested_by="station",
    )
    assert state_of(core, b) == "held"
    assert balances(core, f"station:{station}") == {}

    # order 3 uses it again; a partial refund leaves it used
    o3 = orders.create(
        member_id=m,
        key="o3",
        station_id=station,
        grade="92#",
        nozzle=1,
        amount_fen=20_000,
        coupon_id=str(b),
    )
    orders.pay_with_card(order_id=UUID(o3["order_id"]), member_id=m)
    orders.refund(
        order_id=UUID(o3["order_id"]),
        out_refund_no=f"{m}-r3",
        amount_fen=5_000,
        reason="short fill",
        requested_by="station",
    )
    assert state_of(core, b) == "redeemed"

    # the sweep: three days on, held coupons expire; the redeemed one stays redeemed
    clock.advance(days=3)
    project(core)
    swept = coupons.expire_due()
    assert swept["expired"] >= 3
    assert [state_of(core, c) for c in (a, b)] == ["expired", "redeemed"]
    assert coupons.expire(coupon_id=a)["expired"] is False  # once

    project(core)
    pool = core.read_pool
    shown = {
        s: [
            i["coupon_id"]
            for i in coupon_queries.member_coupons(pool, m, now=clock(), state=s)["items"]
        ]
        for s in ("valid", "used", "expired")
    }
    assert shown["valid"] == [] and shown["used"] == [b] and a in shown["expired"]
    rows = coupon_queries.all_coupons(pool, template_id=eight_pct)["items"]
    assert [(r["coupon_id"], r["state"], r["order_id"]) for r in rows] == [
        (b, "redeemed", UUID(o3["order_id"]))
    ]
    assert rows[0]["restored"] == 1
    assert set(journal_sums(core).values()) == {0}


def test_stackable_coupons_combine_and_the_best_offer_wins(core) -> None:
    clock = Clock()
    coupons, orders = coupon_services(core, clock)
    station = make_station(core)
    [m] = register(core)
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=50_000)
    single = give(coupons, new_template(coupons, amount_off_fen=1_000), m)
    three = give(coupons, new_template(coupons, amount_off_fen=300, stackable=True), m)
    five_pct = give(
        coupons,
        new_template(
            coupons, kind="percent", amount_off_fen=0, percent_off_bps=500, stackable=True
        ),
        m,
    )
    q = orders.quote(member_id=m, station_id=station, grade="92#", nozzle=1, amount_fen=20_000)
    stack = "+".join(sorted([str(three), str(five_pct)], key=lambda s: UUID(s).hex))
    assert q["best_coupon_id"] == stack
    offered = {c["coupon_id"]: c["discount_fen"] for c in q["applicable_coupons"]}
    assert offered == {str(single): 1_000, str(three): 300, str(five_pct): 1_000, stack: 1_300}

    order = orders.create(
        member_id=m,
        key="s1",
        station_id=station,
        grade="92#",
        nozzle=1,
        amount_fen=20_000,
        coupon_id=stack,
    )
    assert order["coupon_fen"] == 1_300
    assert [state_of(core, c) for c in (single, three, five_pct)] == ["held", "locked", "locked"]
    orders.pay_with_card(order_id=UUID(order["order_id"]), member_id=m)
    assert [state_of(core, c) for c in (three, five_pct)] == ["redeemed", "redeemed"]
    with pytest.raises(CouponNotApplicable):  # a non-stackable coupon never joins a stack
        orders.create(
            member_id=m,
            key="s2",
            station_id=station,
            grade="92#",
            nozzle=1,
            amount_fen=20_000,
            coupon_id=f"{single}+{three}",
        )


def test_issuing_is_idempotent_per_key_and_limited_per_member(core) -> None:
    coupons, _ = coupon_services(core, Clock())
    [m, n] = register(core, 2)
    template = new_template(coupons, per_member_limit=2, total_quantity=4)
    first = coupons.issue(template_id=template, member_id=m, issue_key="same")
    assert coupons.issue(template_id=template, member_id=m, issue_key="same") == first
    give(coupons, template, m)
    with pytest.raises(CouponLimitReached):
        give(coupons, template, m)
    batch = coupons.issue_many(template_id=template, key="batch", member_ids=[n, n, m])
    assert batch["counts"] == {"issued": 1, "limit": 1}
    give(coupons, template, register(core)[0])
    with pytest.raises(CouponsExhausted):
        give(coupons, template, register(core)[0])
    assert coupons.template(template)["issued"] == 4


def test_the_read_models_equal_a_fresh_rebuild_and_the_domain(fresh_core) -> None:
    core, clock = fresh_core, Clock()
    coupons, orders = coupon_services(core, clock)
    campaigns = CampaignService(core.runner, clock=clock)
    station = make_station(core)
    m, n = register(core, 2)
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=100_000)
    template = new_template(coupons, per_member_limit=None)
    used, back, idle = (give(coupons, template, m) for _ in range(3))
    for key, coupon in (("a", used), ("b", back)):
        o = orders.create(
            member_id=m,
            key=key,
            station_id=station,
            grade="92#",
            nozzle=1,
            amount_fen=10_000,
            coupon_id=str(coupon),
        )
        orders.pay_with_card(order_id=UUID(o["order_id"]), member_id=m)
        if key == "b":
            orders.refund(
                order_id=UUID(o["order_id"]),
                out_refund_no=f"{m}-{key}",
                amount_fen=10_000,
                reason="test",
                requested_by="station",
            )
    orders.create(
        member_id=m,
        key="c",
        station_id=station,
        grade="92#",
        nozzle=1,
        amount_fen=10_000,
        coupon_id=str(idle),
    )
    for kind, extra in (
        ("red_packet", {"amount_fen": 100, "budget_fen": 100}),
        ("coupon", {"template_id": template, "max_coupons": 1}),
    ):
        c = campaigns.create(key=f"c-{kind}", title=kind, kind=kind, member_ids=[m, n], **extra)
        campaigns.publish(campaign_id=UUID(c["campaign_id"]))
    clock.advance(days=4)
    project_live(core)
    assert coupons.expire_due()["expired"] >= 1
    project_live(core)
    assert fresh_rebuild_differences(core, ("coupons",)) == {}
    with core.read_pool.connection() as conn:
        rows = conn.execute("SELECT coupon_id, state, order_id FROM read.coupons").fetchall()
    for coupon_id, state, order_id in rows:
        aggregate = core.app.repository.get(coupon_id)
        assert (aggregate.state, aggregate.order_id) == (state, order_id)
    assert {r[1] for r in rows} == {"redeemed", "locked", "expired"}


# -- concurrency -------------------------------------------------------------------------------


@pytest.fixture
def second_core(settings, owner_url):
    """Another process's view of the same database: its own cache, locks and committer, so
    conflicts between the two are settled by optimistic concurrency in PostgreSQL."""
    other = build_core(settings, owner_url, migrate=False)
    yield other
    other.close()


def test_fifty_concurrent_issues_never_exceed_a_quantity_of_ten(core, second_core) -> None:
    clock = Clock()
    here, _ = coupon_services(core, clock)
    there, _ = coupon_services(second_core, clock)
    template = new_template(here, total_quantity=10)
    members = register(core, 50)
    results = race(
        [
            (
                lambda s=(here if i % 2 else there), m=m: s.issue(
                    template_id=template, member_id=m, issue_key=f"race-{m}"
                )
            )
            for i, m in enumerate(members)
        ]
    )
    kinds = Counter(type(r).__name__ for r in results)
    assert kinds == {"dict": 10, "CouponsExhausted": 40}
    assert here.template(template)["issued"] == 10
    project(core)
    assert len(coupon_queries.all_coupons(core.read_pool, template_id=template)["items"]) == 10
    assert coupon_queries.templates(core.read_pool, limit=200)["items"]  # listed


def test_concurrent_orders_with_one_coupon_redeem_it_once(core, second_core) -> None:
    clock = Clock()
    here, orders_here = coupon_services(core, clock)
    _, orders_there = coupon_services(second_core, clock)
    station = make_station(core)
    [m] = register(core)
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=500_000)
    coupon = give(here, new_template(here), m)
    results = race(
        [
            (
                lambda svc=(orders_here if i % 2 else orders_there), i=i: svc.create(
                    member_id=m,
                    key=f"r{i}",
                    station_id=station,
                    grade="92#",
                    nozzle=1,
                    amount_fen=10_000,
                    coupon_id=str(coupon),
                )
            )
            for i in range(20)
        ]
    )
    made = [r for r in results if isinstance(r, dict)]
    assert len(made) == 1
    assert all(isinstance(r, CouponNotApplicable) for r in results if not isinstance(r, dict))
    order_id = UUID(made[0]["order_id"])
    paid = race([lambda: orders_here.pay_with_card(order_id=order_id, member_id=m)] * 10)
    assert all(isinstance(p, dict) and p["status"] == "paid" for p in paid)
    topics = [e.topic for e in core.app.recorder.select_events(coupon)]
    assert [t.rsplit(".", 1)[1] for t in topics] == ["Issued", "Locked", "Redeemed"]


# -- invariants under random sequences ---------------------------------------------------------


class CouponLife(RuleBasedStateMachine):
    """Issue, order with a coupon (lock), pay (redeem), let orders expire (release), refund
    in full (restore) or in part, sweep expired coupons, in any order. The model says what
    each coupon's state must be; invariant 4 is that at most one paid, not wholly refunded
    order uses a coupon, and a redeemed coupon is used by exactly that order."""

    core = None  # set by the test

    coupons_ = Bundle("coupons")
    orders_ = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.coupon_service, self.orders = coupon_services(self.core, self.clock)
        self.station = make_station(self.core)
        [self.member] = register(self.core)
        self.core.wallets.top_up(key=f"{self.member}-t", member_id=self.member, amount=5_000_000)
        self.template = new_template(self.coupon_service, amount_off_fen=500, per_member_limit=None)
        self.state: dict[UUID, str] = {}
        self.until: dict[UUID, object] = {}
        self.order_of: dict[UUID, UUID | None] = {}
        self.status: dict[UUID, str] = {}
        self.expires: dict[UUID, object] = {}
        self.uses: dict[UUID, UUID] = {}
        self.left: dict[UUID, int] = {}

    @rule(target=coupons_)
    def issue(self) -> UUID:
        coupon = give(self.coupon_service, self.template, self.member)
        self.state[coupon] = "held"
        self.until[coupon] = self.clock() + timedelta(days=3)
        return coupon

    @rule(target=orders_, coupon=coupons_, amount=st.integers(1_000, 30_000))
    def create_order(self, coupon: UUID, amount: int) -> UUID | None:
        key = uuid4().hex
        usable = self.state[coupon] == "held" and self.clock() < self.until[coupon]
        try:
            order = self.orders.create(
                member_id=self.member,
                key=key,
                station_id=self.station,
                grade="92#",
                nozzle=1,
                amount_fen=amount,
                coupon_id=str(coupon),
            )
        except CouponNotApplicable:
            assert not usable
            return None
        assert usable
        order_id = UUID(order["order_id"])
        self.state[coupon], self.order_of[coupon] = "locked", order_id
        self.status[order_id], self.uses[order_id] = "created", coupon
        self.expires[order_id], self.left[order_id] = self.clock() + timedelta(minutes=15), amount
        return order_id

    @rule(order=orders_)
    def pay(self, order: UUID | None) -> None:
        if order is None:
            return
        payable = self.status[order] == "created" and self.clock() < self.expires[order]
        paid_before = self.status[order] in ("paid", "partially_refunded", "refunded")
        try:
            self.orders.pay_with_card(order_id=order, member_id=self.member)
        except OrderNotPayable:
            assert not payable and not paid_before
            return
        assert payable or paid_before  # paying again answers the first payment
        if payable:
            self.status[order] = "paid"
            self.state[self.uses[order]] = "redeemed"

    @rule(order=orders_)
    def let_it_expire(self, order: UUID | None) -> None:
        self.clock.advance(minutes=16)
        if order is None:
            return
        try:
            result = self.orders.expire(order_id=order)
        except OrderNotPayable:
            assert self.status[order] != "created"
            return
        if self.status[order] == "expired":  # the same command again: its first answer
            assert result["status"] == "expired"
            return
        assert self.status[order] == "created"
        self.status[order] = "expired"
        self.state[self.uses[order]], self.order_of[self.uses[order]] = "held", None

    @rule(order=orders_, whole=st.booleans(), cut=st.integers(1, 10_000))
    def refund(self, order: UUID | None, whole: bool, cut: int) -> None:
        if order is None or self.status[order] not in ("paid", "partially_refunded"):
            return
        amount = self.left[order] if whole else max(1, self.left[order] * cut // 20_000)
        self.orders.refund(
            order_id=order,
            out_refund_no=uuid4().hex,
            amount_fen=amount,
            reason="test",
            requested_by="station",
        )
        self.left[order] -= amount
        coupon = self.uses[order]
        if self.left[order] == 0:
            self.status[order] = "refunded"
            valid = self.clock() < self.until[coupon]
            self.state[coupon], self.order_of[coupon] = ("held" if valid else "expired"), None
        else:
            self.status[order] = "partially_refunded"

    @rule()
    def a_day_later_sweep(self) -> None:
        self.clock.advance(days=1)
        for coupon in self.state:
            expired = self.coupon_service.expire(coupon_id=coupon)["expired"]
            due = self.state[coupon] == "held" and self.clock() >= self.until[coupon]
            assert expired == due
            if due:
                self.state[coupon] = "expired"

    @invariant()
    def coupons_match_the_model_and_are_redeemed_at_most_once(self) -> None:
        live = Counter(
            c for o, c in self.uses.items() if self.status[o] in ("paid", "partially_refunded")
        )
        assert all(n <= 1 for n in live.values())
        for coupon, expected in self.state.items():
            aggregate = self.core.app.repository.get(coupon)
            assert aggregate.state == expected
            assert (expected == "redeemed") == (live[coupon] == 1)

    def teardown(self) -> None:
        project(self.core)
        assert set(journal_sums(self.core).values()) <= {0}


def test_random_coupon_lives_keep_invariant_4_and_a_balanced_journal(fresh_core) -> None:
    # A database of its own: hundreds of random orders would crowd the shared one's figures.
    CouponLife.core = fresh_core
    run_state_machine_as_test(
        CouponLife,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- HTTP --------------------------------------------------------------------------------------


PROBLEM = "application/problem+json"


@pytest.fixture
def http(core):
    with TestClient(create_app(core=core, providers=object())) as client:  # type: ignore[arg-type]
        yield client


def bearer(core, subject: UUID, role: str, scope) -> dict[str, str]:
    token, _ = issue_access_token(core.settings, subject, role, scope)
    return {"Authorization": f"Bearer {token}"}


def problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code


def test_back_office_issues_and_the_member_sees_and_uses_coupons(core, http) -> None:
    admin = bearer(core, uuid4(), "admin", SUPER_ADMIN_SCOPE)
    [m] = register(core)
    member = bearer(core, m, "member", MEMBER_SCOPE)
    station = make_station(core)
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=50_000)
    body = {
        "title": "20 off 150",
        "kind": "threshold",
        "amount_off_fen": 2_000,
        "min_amount_fen": 15_000,
        "valid_days": 7,
        "total_quantity": 100,
        "station_ids": [str(station)],
        "funded_by": "station",
    }
    key = {"Idempotency-Key": f"tpl-{uuid4().hex}"}
    created = http.post("/v1/admin/coupon-templates", json=body, headers={**admin, **key})
    assert created.status_code == 201, created.text
    template = created.json()
    assert template["funder_account"] == acc.station_marketing(station)
    again = http.post("/v1/admin/coupon-templates", json=body, headers={**admin, **key})
    assert again.json() == template
    problem(
        http.post(
            "/v1/admin/coupon-templates",
            json={**body, "total_quantity": 5},
            headers={**admin, **key},
        ),
        409,
        "idempotency_conflict",
    )

    issue = f"/v1/admin/coupon-templates/{template['template_id']}/issue"
    issued = http.post(
        issue, json={"member_ids": [str(m)]}, headers={**admin, "Idempotency-Key": "issue-0001"}
    )
    assert issued.status_code == 200, issued.text
    assert issued.json()["counts"] == {"issued": 1}
    assert (
        http.post(
            issue, json={"member_ids": [str(m)]}, headers={**admin, "Idempotency-Key": "issue-0001"}
        ).json()
        == issued.json()
    )
    problem(
        http.post(
            issue,
            json={"member_ids": [str(uuid4())]},
            headers={**admin, "Idempotency-Key": "issue-0001"},
        ),
        409,
        "idempotency_conflict",
    )
    coupon_id = issued.json()["results"][0]["coupon_id"]

    project(core)
    valid = http.get("/v1/me/coupons?state=valid", headers=member).json()["items"]
    assert [(c["coupon_id"], c["display_state"], c["state"]) for c in valid] == [
        (coupon_id, "valid", "held")
    ]
    order = {"station_id": str(station), "grade": "92#", "nozzle": 1, "amount_fen": 20_000}
    quote = http.post("/v1/orders/quote", json=order, headers=member).json()
    assert (quote["best_coupon_id"], quote["applicable_coupons"][0]["discount_fen"]) == (
        coupon_id,
        2_000,
    )
    made = http.post(
        "/v1/orders",
        json={**order, "coupon_id": coupon_id},
        headers={**member, "Idempotency-Key": f"o-{uuid4().hex}"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["payable_fen"] == 18_000
    paid = http.post(
        f"/v1/orders/{made.json()['order_id']}/pay", json={"method": "card"}, headers=member
    )
    assert paid.status_code == 200, paid.text

    project(core)
    used = http.get("/v1/me/coupons?state=used", headers=member).json()["items"]
    assert [c["coupon_id"] for c in used] == [coupon_id]
    assert http.get("/v1/me/coupons?state=valid", headers=member).json()["items"] == []
    listed = http.get(
        f"/v1/admin/coupons?template_id={template['template_id']}", headers=admin
    ).json()["items"]
    assert [(c["coupon_id"], c["state"], c["member_id"]) for c in listed] == [
        (coupon_id, "redeemed", str(m))
    ]
    by_state = http.get("/v1/admin/coupons?state=redeemed&limit=200", headers=admin).json()
    assert coupon_id in [c["coupon_id"] for c in by_state["items"]] or by_state["next_cursor"]
    templates = http.get("/v1/admin/coupon-templates?limit=200", headers=admin).json()["items"]
    mine = next(t for t in templates if t["template_id"] == template["template_id"])
    assert (mine["issued"], mine["remaining"]) == (1, 99)


def test_admin_endpoints_refuse_members_and_bad_input_is_problem_json(core, http) -> None:
    [m] = register(core)
    member = bearer(core, m, "member", MEMBER_SCOPE)
    admin = bearer(core, uuid4(), "admin", SUPER_ADMIN_SCOPE)
    key = {"Idempotency-Key": f"k-{uuid4().hex}"}
    tid = str(uuid4())
    for method, path in [
        ("post", "/v1/admin/coupon-templates"),
        ("get", "/v1/admin/coupon-templates"),
        ("post", f"/v1/admin/coupon-templates/{tid}/issue"),
        ("get", "/v1/admin/coupons"),
        ("post", "/v1/admin/campaigns"),
        ("post", f"/v1/admin/campaigns/{tid}/publish"),
        ("get", "/v1/admin/campaigns"),
    ]:
        kwargs = {"json": {}} if method == "post" else {}
        problem(getattr(http, method)(path, headers={**member, **key}, **kwargs), 403, "forbidden")
        problem(getattr(http, method)(path, headers=key, **kwargs), 401, "unauthenticated")
    problem(http.get("/v1/me/coupons", headers=admin), 403, "forbidden")

    good = {
        "title": "t",
        "kind": "fixed",
        "amount_off_fen": 100,
        "valid_days": 1,
        "total_quantity": 1,
    }
    station = str(make_station(core))
    for changes, code in [
        ({"kind": "bogus"}, "invalid_request"),
        ({"kind": "percent"}, "invalid_coupon_template"),
        ({"valid_until": "2030-01-01T00:00:00Z"}, "invalid_coupon_template"),
        ({"valid_days": None, "valid_until": "2030-01-01T00:00:00"}, "invalid_request"),
        ({"funded_by": "station"}, "invalid_coupon_template"),
        ({"station_ids": [str(uuid4())]}, "not_found"),
        ({"kind": "threshold", "min_amount_fen": 50}, "invalid_coupon_template"),
        ({"total_quantity": 0}, "invalid_request"),
        ({"surprise": 1}, "invalid_request"),
        (
            {"funded_by": "station", "station_ids": [station, str(uuid4())]},
            "invalid_coupon_template",
        ),
    ]:
        response = http.post(
            "/v1/admin/coupon-templates",
            json={**good, **changes},
            headers={**admin, "Idempotency-Key": f"k-{uuid4().hex}"},
        )
        problem(response, 404 if code == "not_found" else 422, code)
    problem(
        http.post(
            f"/v1/admin/coupon-templates/{tid}/issue",
            json={"segment": "all_members"},
            headers={**admin, **key},
        ),
        404,
        "not_found",
    )
    problem(
        http.post(
            f"/v1/admin/coupon-templates/{tid}/issue",
            json={"segment": "all_members", "member_ids": [str(m)]},
            headers={**admin, **key},
        ),
        422,
        "invalid_request",
    )
    problem(http.get("/v1/admin/coupons?state=lost", headers=admin), 422, "invalid_request")
    problem(http.get("/v1/me/coupons?state=held", headers=member), 422, "invalid_request")
    problem(http.get("/v1/admin/coupons?cursor=nope", headers=admin), 400, "invalid_cursor")


def test_segment_issue_reaches_every_member(core, http) -> None:
    admin = bearer(core, uuid4(), "admin", SUPER_ADMIN_SCOPE)
    fresh = register(core, 3)
    project(core)
    everyone = coupon_queries.segment_members(core.read_pool, "all_members")
    created = http.post(
        "/v1/admin/coupon-templates",
        json={
            "title": "For all",
            "kind": "fixed",
            "amount_off_fen": 100,
            "valid_days": 1,
            "total_quantity": 1_000_000,
            "per_member_limit": 1,
        },
        headers={**admin, "Idempotency-Key": f"k-{uuid4().hex}"},
    ).json()
    issued = http.post(
        f"/v1/admin/coupon-templates/{created['template_id']}/issue",
        json={"segment": "all_members"},
        headers={**admin, "Idempotency-Key": "segment-001"},
    )
    assert issued.status_code == 200, issued.text
    counts = issued.json()["counts"]
    # read.members rows with no Member behind them (other tests write some) are skipped
    assert issued.json()["requested"] == len(everyone) == sum(counts.values())
    assert set(counts) <= {"issued", "unknown_member"}
    project(core)
    for member in fresh:
        mine = coupon_queries.all_coupons(core.read_pool, member_id=member)["items"]
        assert [(c["template_id"], c["source"]) for c in mine] == [
            (UUID(created["template_id"]), "segment")
        ]

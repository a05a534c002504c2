"""Campaigns and red packets (M16, A13): worked examples, the budget under concurrency, HTTP."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from api.auth import MEMBER_SCOPE, issue_access_token
from api.main import create_app
from api.permissions import SUPER_ADMIN_SCOPE
from coupon_support import coupon_services, new_template, race, register
from infra.bootstrap import build_core
from ledger import accounts as acc
from ledger.errors import InvalidCampaign
from ledger.services.campaigns import CampaignService
from orders_support import Clock
from projections import coupons as coupon_queries
from support import journal_sums, nonzero, project, read_balances


def campaigns_of(core) -> CampaignService:
    return CampaignService(core.runner, clock=Clock())


def test_red_packets_credit_the_card_bonus_within_the_budget(core) -> None:
    campaigns = campaigns_of(core)
    a, b, c = register(core, 3)
    created = campaigns.create(
        key=f"c-{uuid4().hex}",
        title="Spring red packets",
        kind="red_packet",
        amount_fen=888,
        budget_fen=2_000,
        member_ids=[a, b, c],
    )
    campaign_id = UUID(created["campaign_id"])
    with pytest.raises(InvalidCampaign):  # nothing is given before publishing
        campaigns.give(campaign_id=campaign_id, member_ids=[a])
    project(core)
    marketing_before = read_balances(core).get((acc.PLATFORM_MARKETING, "CNY"), 0)

    published = campaigns.publish(campaign_id=campaign_id)
    assert published["counts"] == {"issued": 2, "budget_exhausted": 1}
    assert (published["spent_fen"], published["recipients"]) == (1_776, 2)
    project(core)
    for member in (a, b):
        assert nonzero(read_balances(core, f"member:{member}")) == {
            (acc.member_card_bonus(member), "CNY"): 888
        }
    assert nonzero(read_balances(core, f"member:{c}")) == {}
    assert read_balances(core)[(acc.PLATFORM_MARKETING, "CNY")] == marketing_before - 1_776

    again = campaigns.publish(campaign_id=campaign_id)  # the same gifts: the first answer
    assert (again["counts"], again["spent_fen"]) == (published["counts"], 1_776)
    other = campaigns.give(campaign_id=campaign_id, member_ids=[a, c])  # another command
    assert [r["outcome"] for r in other["results"]] == ["already", "budget_exhausted"]
    assert campaigns.get(campaign_id)["spent_fen"] == 1_776
    [row] = [
        r
        for r in coupon_queries.campaigns(core.read_pool, limit=200)["items"]
        if r["campaign_id"] == campaign_id
    ]
    assert (row["status"], row["spent_fen"], row["recipients"]) == ("published", 1_776, 2)
    assert set(journal_sums(core).values()) == {0}


def test_a_coupon_campaign_gives_at_most_its_coupon_count(core) -> None:
    coupons, _ = coupon_services(core, Clock())
    campaigns = campaigns_of(core)
    template = new_template(coupons, total_quantity=100)
    members = register(core, 3)
    created = campaigns.create(
        key=f"c-{uuid4().hex}",
        title="Coupons for three",
        kind="coupon",
        template_id=template,
        max_coupons=2,
        member_ids=members,
    )
    published = campaigns.publish(campaign_id=UUID(created["campaign_id"]))
    assert published["counts"] == {"issued": 2, "budget_exhausted": 1}
    assert published["coupons_given"] == 2
    assert coupons.template(template)["issued"] == 2
    project(core)
    gifts = coupon_queries.all_coupons(core.read_pool, template_id=template)["items"]
    assert sorted(g["member_id"] for g in gifts) == sorted(members[:2])
    assert {g["source"] for g in gifts} == {"campaign"}


@pytest.fixture
def second_core(settings, owner_url):
    other = build_core(settings, owner_url, migrate=False)
    yield other
    other.close()


def test_fifty_racing_gifts_never_exceed_the_budget(core, second_core) -> None:
    here, there = campaigns_of(core), campaigns_of(second_core)
    first, *members = register(core, 51)
    created = here.create(
        key=f"c-{uuid4().hex}",
        title="Race",
        kind="red_packet",
        amount_fen=500,
        budget_fen=5_500,
        member_ids=[first],
    )
    campaign_id = UUID(created["campaign_id"])
    assert here.publish(campaign_id=campaign_id)["counts"] == {"issued": 1}
    results = race(
        [
            (
                lambda s=(here if i % 2 else there), m=m: s.give(
                    campaign_id=campaign_id, member_ids=[m]
                )
            )
            for i, m in enumerate(members)
        ]
    )
    outcomes = [r["results"][0]["outcome"] for r in results]  # type: ignore[index]
    assert outcomes.count("issued") == 10 and outcomes.count("budget_exhausted") == 40
    assert here.get(campaign_id)["spent_fen"] == 5_500
    project(core)
    bonus = [
        read_balances(core, f"member:{m}").get((acc.member_card_bonus(m), "CNY"), 0)
        for m in [first, *members]
    ]
    assert sorted(b for b in bonus if b) == [500] * 11
    assert set(journal_sums(core).values()) == {0}


# -- HTTP --------------------------------------------------------------------------------------


PROBLEM = "application/problem+json"


@pytest.fixture
def http(core):
    with TestClient(create_app(core=core, providers=object())) as client:  # type: ignore[arg-type]
        yield client


def test_campaigns_through_the_back_office(core, http) -> None:
    token, _ = issue_access_token(core.settings, uuid4(), "admin", SUPER_ADMIN_SCOPE)
    admin = {"Authorization": f"Bearer {token}"}
    [m] = register(core)
    body = {
        "title": "Lucky money",
        "kind": "red_packet",
        "amount_fen": 666,
        "budget_fen": 666,
        "member_ids": [str(m)],
    }
    created = http.post(
        "/v1/admin/campaigns", json=body, headers={**admin, "Idempotency-Key": f"c-{uuid4().hex}"}
    )
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["status"] == "draft"
    published = http.post(f"/v1/admin/campaigns/{campaign['campaign_id']}/publish", headers=admin)
    assert published.status_code == 200, published.text
    assert published.json()["counts"] == {"issued": 1}
    project(core)
    listed = http.get("/v1/admin/campaigns?limit=200", headers=admin).json()["items"]
    mine = next(c for c in listed if c["campaign_id"] == campaign["campaign_id"])
    assert (mine["status"], mine["spent_fen"]) == ("published", 666)
    member_token, _ = issue_access_token(core.settings, m, "member", MEMBER_SCOPE)
    card = http.get("/v1/card", headers={"Authorization": f"Bearer {member_token}"}).json()
    assert card["card_bonus_fen"] == 666
    history = http.get(
        "/v1/card/transactions", headers={"Authorization": f"Bearer {member_token}"}
    ).json()["items"]
    assert [(h["kind"], h["bonus_fen"]) for h in history] == [("red_packet", 666)]

    for changes, status, code in [
        ({"budget_fen": 100}, 422, "invalid_campaign"),  # less than one packet
        ({"kind": "coupon"}, 422, "invalid_campaign"),  # no template
        (
            {
                "kind": "coupon",
                "template_id": str(uuid4()),
                "max_coupons": 1,
                "amount_fen": 0,
                "budget_fen": 0,
            },
            404,
            "not_found",
        ),
        ({"member_ids": []}, 422, "invalid_request"),
        ({"segment": "everyone"}, 422, "invalid_request"),
        ({"amount_fen": -1}, 422, "invalid_request"),
    ]:
        response = http.post(
            "/v1/admin/campaigns",
            json={**body, **changes},
            headers={**admin, "Idempotency-Key": f"c-{uuid4().hex}"},
        )
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == code
    missing = http.post(f"/v1/admin/campaigns/{uuid4()}/publish", headers=admin)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")

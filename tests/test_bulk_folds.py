"""The rebuild's raw folds (projections.*_bulk) write what the live projectors write, for logs
where the events a fold hands to the live statements fall between the ones it gathers; each
read with windows of one event, a few, and the whole log at once (one feed)."""

from __future__ import annotations

from distribution_support import bind, member
from rebuild_support import fresh_rebuild_differences, project_live
from test_reconciliation import BASE, keys, paid_order, refund, sign_in, today, world_on

PAGES = (1, 3, 10_000)
__all__ = ["keys"]  # the fixture world_on needs


def test_the_members_fold_writes_what_the_live_projector_writes(fresh_core) -> None:
    core = fresh_core
    first, second = member(core, "a"), member(core, "b")
    bind(core, second, first)  # the member's registration is still gathered
    third = member(core, "c")
    core.members.update_profile(third, nickname="Ah Cee", key="p1")
    core.members.bind_phone(first, "+8613800000001", method="sms", key="ph1")
    fourth = member(core, "d")
    core.members.update_profile(first, avatar_url="https://a/b.png", key="p2")
    core.members.link_alipay(fourth, "2088000000000001")
    core.members.sign_in("openid-late", None)
    project_live(core, page_size=2)
    for page in PAGES:
        assert fresh_rebuild_differences(core, ("members",), page=page) == {}, page


def test_the_reconciliation_fold_writes_what_the_live_projector_writes(fresh_core, keys) -> None:
    with world_on(fresh_core, keys) as w:
        core = w.core
        auth = sign_in(w)
        first = paid_order(w, auth, "wechat", 20_000)
        refund(w, first, "wechat", 5_000)
        fetched = w.api.post(
            f"{BASE}/fetch", json={"provider": "wechat", "bill_date": today()}, headers=w.finance
        )
        assert fetched.status_code == 201, fetched.text
        # After the run (which the fold hands to the live handlers): payments, and refunds
        # made and answered.
        second = paid_order(w, auth, "wechat", 8_800)
        refund(w, second, "wechat", 800)
        by_alipay = paid_order(w, sign_in(w, "alipay"), "alipay", 15_000)
        refund(w, by_alipay, "alipay", 3_000)
        project_live(core, page_size=3)
        for page in PAGES:
            assert fresh_rebuild_differences(core, ("reconciliation",), page=page) == {}, page

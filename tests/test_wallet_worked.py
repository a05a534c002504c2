"""Worked examples: every account after each step, in the domain and in the read model."""

from __future__ import annotations

from uuid import uuid4

import pytest

from ledger import accounts as acc
from ledger.errors import IdempotencyConflict, InsufficientBalance, UnknownHold
from support import journal_sums, nonzero, project, read_balances


def test_top_up_with_bonus_then_spend_then_holds(core) -> None:
    m = uuid4()
    station = uuid4()
    card, bonus = acc.member_card(m), acc.member_card_bonus(m)
    owner = f"member:{m}"

    # 1. top up 500 yuan, get 20 bonus
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=50_000, bonus=2_000)
    project(core)
    assert read_balances(core, owner) == {(card, "CNY"): 50_000, (bonus, "CNY"): 2_000}

    # 2. spend 510 yuan at a station: cash value first, then 10 of bonus; 1% platform fee
    paid = core.wallets.pay_with_card(
        key=f"{m}-p",
        member_id=m,
        amount=51_000,
        destinations=[(acc.station_income(station), 50_490), (acc.PLATFORM_REVENUE, 510)],
    )
    assert (paid["from_card"], paid["from_bonus"]) == (50_000, 1_000)
    project(core)
    assert nonzero(read_balances(core, owner)) == {(bonus, "CNY"): 1_000}
    assert read_balances(core, f"station:{station}") == {
        (acc.station_income(station), "CNY"): 50_490
    }

    # 3. hold 6 yuan of bonus, then void it: back where it was
    hold = core.wallets.hold(key=f"{m}-h1", member_id=m, bucket="card_bonus", amount=600)
    project(core)
    assert nonzero(read_balances(core, owner)) == {
        (bonus, "CNY"): 400,
        (acc.held(bonus), "CNY"): 600,
    }
    with pytest.raises(InsufficientBalance):  # the held part is not spendable
        core.wallets.pay_with_card(
            key=f"{m}-p2", member_id=m, amount=401, destinations=[(acc.PLATFORM_REVENUE, 401)]
        )
    core.wallets.void_hold(member_id=m, hold_id=hold["hold_id"])
    project(core)
    assert nonzero(read_balances(core, owner)) == {(bonus, "CNY"): 1_000}

    # 4. hold 3 yuan and post it to the platform: it leaves for good
    hold = core.wallets.hold(key=f"{m}-h2", member_id=m, bucket="card_bonus", amount=300)
    core.wallets.post_hold(
        member_id=m,
        hold_id=hold["hold_id"],
        destinations=[(acc.PLATFORM_REVENUE, 300)],
        kind="test_post",
    )
    with pytest.raises(UnknownHold):  # posted holds cannot be voided afterwards
        core.wallets.void_hold(member_id=m, hold_id=hold["hold_id"])
    project(core)
    assert nonzero(read_balances(core, owner)) == {(bonus, "CNY"): 700}
    assert journal_sums(core) == {asset: 0 for asset in journal_sums(core)}


def test_points_earn_and_spend(core) -> None:
    m = uuid4()
    core.wallets.earn_points(key=f"{m}-e", member_id=m, points=120)
    core.wallets.spend_points(key=f"{m}-s", member_id=m, points=20)
    with pytest.raises(InsufficientBalance):
        core.wallets.spend_points(key=f"{m}-s2", member_id=m, points=101)
    project(core)
    assert read_balances(core, f"member:{m}") == {(acc.member_points(m), "PTS"): 100}


def test_a_retried_command_has_one_effect_and_returns_the_first_result(core) -> None:
    m = uuid4()
    first = core.wallets.top_up(key=f"{m}-once", member_id=m, amount=1_000)
    again = core.wallets.top_up(key=f"{m}-once", member_id=m, amount=1_000)
    assert again == first
    with pytest.raises(IdempotencyConflict):
        core.wallets.top_up(key=f"{m}-once", member_id=m, amount=2_000)
    # a spend retried after the balance is gone still answers with its first result
    spent = core.wallets.pay_with_card(
        key=f"{m}-all", member_id=m, amount=1_000, destinations=[(acc.PLATFORM_REVENUE, 1_000)]
    )
    assert (
        core.wallets.pay_with_card(
            key=f"{m}-all", member_id=m, amount=1_000, destinations=[(acc.PLATFORM_REVENUE, 1_000)]
        )
        == spent
    )
    project(core)
    assert nonzero(read_balances(core, f"member:{m}")) == {}


def test_station_settlement_batches_move_income_to_available(core) -> None:
    m, station = uuid4(), uuid4()
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=10_000)
    core.wallets.pay_with_card(
        key=f"{m}-p",
        member_id=m,
        amount=10_000,
        destinations=[(acc.station_income(station), 9_900), (acc.PLATFORM_REVENUE, 100)],
    )
    result = core.stations.settle(station_id=station, amount=9_900, up_to_position=10**9)
    assert result["available"] == 9_900
    project(core)
    assert nonzero(read_balances(core, f"station:{station}")) == {
        (acc.station_available(station), "CNY"): 9_900
    }


def test_a_failed_command_leaves_nothing_behind_for_the_next_one(core) -> None:
    """Regression: a command that triggered an event and then failed must not leave that
    event in the cached aggregate for a later command to save."""
    from ledger.commands import UnitOfWork
    from ledger.domain.wallet import Wallet
    from ledger.ids import from_key

    m = uuid4()
    core.wallets.top_up(key=f"{m}-t", member_id=m, amount=1_000)
    wallet_id = Wallet.create_id(m)

    def hold_then_fail(uow: UnitOfWork) -> None:
        wallet = uow.get(Wallet, wallet_id)
        wallet.hold("h", from_key("x", str(m)), acc.member_card(m), "CNY", 500)
        wallet.spend_points(from_key("y", str(m)), 1)  # no points: refused

    with pytest.raises(InsufficientBalance):
        core.runner.run(from_key("cmd", f"{m}-fail"), ["fail"], hold_then_fail)
    core.wallets.earn_points(key=f"{m}-e", member_id=m, points=5)
    events = core.app.events.get(wallet_id)
    assert [type(e).__name__ for e in events] == ["Opened", "CardToppedUp", "PointsEarned"]
    assert core.wallets.get(m)["holds"] == {}

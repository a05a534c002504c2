"""Random interleavings of commission and withdrawals against a model of the referrer's money.

Each sequence gets a referrer with two referees who pay for fuel by card; then, in any order:
payments (commission pending), refunds of any part (clawed back from pending, else from
available, else into debt), the release job at any time, withdrawal requests, approvals,
rejections, the provider's final word (sent two or three times, in any order), and retries
after a failure. Refused commands are outcomes the model predicted and change nothing.

Checked after every step: the referrer's wallet (pending, available, held, debt, all never
negative: invariant 2). At the end: each asset's journal sums to zero (1); the read model
agrees with the model; everything is refunded and settled, and then the referrer is left
exactly with what was paid out to them owed back as debt, the referees' cards are as topped
up and the station has no income from these orders (7). Payout results applied once (3).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from distribution_support import bind, member, orders_of, own_core
from distribution_support import station as shared_station
from infra.bootstrap import Core
from ledger import accounts as acc
from ledger.domain.loyalty_book import commission_debt_account
from ledger.domain.wallet import Wallet
from ledger.errors import (
    CommissionDebtOutstanding,
    InsufficientBalance,
    WithdrawalNotAllowed,
)
from ledger.money import prorate
from orders_support import Clock
from support import journal_sums, nonzero, project, read_balances

EXAMPLES = max(10, int(os.environ.get("LEDGER_HYPOTHESIS_EXAMPLES", "500")) // 20)
STEPS = 18
RATE_BPS = 100  # the settings' default commission rate
MIN_FEN = 100  # the settings' default minimum withdrawal
TOP_UP = 10_000_000
STATS: dict[str, int] = defaultdict(int)


@pytest.fixture(scope="module")
def core(server_url, settings) -> Iterator[Core]:
    yield from own_core(server_url, settings)


@dataclass
class Order:
    order_id: UUID
    referee: UUID
    left: int  # cash not yet refunded
    commission: int  # not yet clawed back
    due_at: object
    pending: bool = True


@dataclass
class Request:
    withdrawal_id: UUID
    amount: int
    state: str = "requested"
    out_bill_no: str | None = None


class CommissionAndWithdrawals(RuleBasedStateMachine):
    core: Core

    def __init__(self) -> None:
        super().__init__()
        self.orders: list[Order] = []
        self.requests: list[Request] = []
        self.pending = self.available = self.held = self.debt = 0
        self.paid_out = 0

    @initialize(opening=st.lists(st.integers(20_000, 200_000), min_size=0, max_size=3))
    def parties(self, opening: list[int]) -> None:
        core = self.core
        self.clock = Clock()
        self.service = orders_of(core, self.clock)
        self.station = shared_station(core)
        project(core)
        self.income_before = nonzero(read_balances(core, f"station:{self.station}"))
        self.referrer = member(core, "r")
        self.referees = [member(core, "e1"), member(core, "e2")]
        for e in self.referees:
            bind(core, e, self.referrer)
            core.wallets.top_up(key=f"{e}-t", member_id=e, amount=TOP_UP)
        # A head start: commission already released, so withdrawals happen in most sequences
        # (orders stay refundable, so clawbacks from available and into debt happen too).
        for amount in opening:
            self.pay(0, amount)
        self.release(7)

    # -- commission -------------------------------------------------------------------------

    @rule(who=st.integers(0, 1), amount=st.integers(100, 200_000))
    def pay(self, who: int, amount: int) -> None:
        e = self.referees[who]
        order = self.service.create(
            member_id=e,
            key=uuid4().hex,
            station_id=self.station,
            grade="92#",
            nozzle=1,
            amount_fen=amount,
        )
        self.service.pay_with_card(order_id=UUID(order["order_id"]), member_id=e)
        commission = amount * RATE_BPS // 10_000
        if commission:
            self.pending += commission
        self.orders.append(
            Order(
                UUID(order["order_id"]),
                e,
                amount,
                commission,
                self.clock.now + timedelta(days=7),
                pending=commission > 0,
            )
        )

    @precondition(lambda self: any(o.left for o in self.orders))
    @rule(pick=st.integers(0, 1_000), share=st.integers(1, 100))
    def refund(self, pick: int, share: int) -> None:
        live = [o for o in self.orders if o.left > 0]
        if not live:
            return
        o = live[pick % len(live)]
        amount = max(1, o.left * share // 100)
        self.service.refund(
            order_id=o.order_id,
            out_refund_no=uuid4().hex,
            amount_fen=amount,
            reason="test",
            requested_by="station",
        )
        claw = prorate(o.commission, amount, o.left) if o.commission else 0
        o.left -= amount
        o.commission -= claw
        if o.pending:
            self.pending -= claw
        else:
            from_available = min(claw, self.available)
            self.available -= from_available
            self.debt += claw - from_available
            STATS["claw_from_available"] += 1
            STATS["claw_into_debt"] += claw > from_available

    @rule(days=st.sampled_from([0, 1, 3, 7, 8]))
    def release(self, days: int) -> None:
        self.clock.advance(days=days)
        self.core.commission.release_for(self.referrer, self.clock.now)
        due = [o for o in self.orders if o.pending and o.due_at <= self.clock.now]
        total = sum(o.commission for o in due)
        for o in due:
            o.pending = False
        if total:
            self.pending -= total
            repaid = min(self.debt, total)
            self.debt -= repaid
            self.available += total - repaid

    # -- withdrawals ------------------------------------------------------------------------

    @rule(share=st.one_of(st.integers(30, 100), st.sampled_from([0, 100, 101])))
    def request(self, share: int) -> None:
        amount = max(MIN_FEN - 1, self.available * share // 100 + (share > 100))
        send = self.core.withdrawals.request_for_member
        kwargs = dict(member_id=self.referrer, key=uuid4().hex, amount_fen=amount)
        if amount < MIN_FEN:
            expected: type[Exception] | None = WithdrawalNotAllowed
        elif self.debt:
            expected = CommissionDebtOutstanding
        elif amount > self.available:
            expected = InsufficientBalance
        else:
            expected = None
        if expected is not None:
            with pytest.raises(expected):
                send(**kwargs)
            STATS[f"refused:{expected.__name__}"] += 1
            return
        w = send(**kwargs)
        STATS["requested"] += 1
        self.available -= amount
        self.held += amount
        self.requests.append(Request(UUID(w["withdrawal_id"]), amount))

    def pick(self, pick: int, *states: str) -> Request | None:
        found = [r for r in self.requests if r.state in states]
        return found[pick % len(found)] if found else None

    @precondition(lambda self: any(r.state == "requested" for r in self.requests))
    @rule(pick=st.integers(0, 1_000))
    def approve(self, pick: int) -> None:
        r = self.pick(pick, "requested")
        if r is None:
            return
        if self.debt:
            with pytest.raises(CommissionDebtOutstanding):
                self.core.withdrawals.approve(withdrawal_id=r.withdrawal_id, by="admin")
            return
        r.out_bill_no = self.core.withdrawals.approve(withdrawal_id=r.withdrawal_id, by="admin")[
            "out_bill_no"
        ]
        r.state = "approved"
        STATS["approved"] += 1

    @precondition(lambda self: any(r.state == "requested" for r in self.requests))
    @rule(pick=st.integers(0, 1_000))
    def reject(self, pick: int) -> None:
        r = self.pick(pick, "requested")
        if r is None:
            return
        self.core.withdrawals.reject(withdrawal_id=r.withdrawal_id, by="admin", reason="no")
        r.state = "rejected"
        self.give_back(r.amount)

    def give_back(self, amount: int) -> None:
        self.held -= amount
        self.available += amount
        repaid = min(self.debt, self.available)
        self.debt -= repaid
        self.available -= repaid

    @precondition(lambda self: any(r.state == "approved" for r in self.requests))
    @rule(
        pick=st.integers(0, 1_000),
        copies=st.integers(1, 3),
        state=st.sampled_from(["SUCCESS", "FAIL", "SUCCESS", "CANCELLED", "SUCCESS"]),
    )
    def provider_result(self, pick: int, copies: int, state: str) -> None:
        r = self.pick(pick, "approved")
        if r is None:
            return
        success = state == "SUCCESS"
        results = [
            self.core.withdrawals.record_payout_result(out_bill_no=r.out_bill_no, state=state)
            for _ in range(copies)
        ]
        assert [x["applied"] for x in results] == [True] * copies  # the first answer, again
        STATS[f"result:{state}"] += 1
        if success:
            r.state = "paid"
            self.held -= r.amount
            self.paid_out += r.amount
        else:
            r.state = "failed"
            self.give_back(r.amount)
        # the other final word arriving late changes nothing
        other = "FAIL" if success else "SUCCESS"
        late = self.core.withdrawals.record_payout_result(out_bill_no=r.out_bill_no, state=other)
        assert late["applied"] is False

    @precondition(lambda self: any(r.state == "failed" for r in self.requests))
    @rule(pick=st.integers(0, 1_000))
    def retry(self, pick: int) -> None:
        r = self.pick(pick, "failed")
        if r is None:
            return
        send = self.core.withdrawals.retry
        if self.debt:
            with pytest.raises(CommissionDebtOutstanding):
                send(withdrawal_id=r.withdrawal_id, by="admin")
            return
        if r.amount > self.available:
            with pytest.raises(InsufficientBalance):
                send(withdrawal_id=r.withdrawal_id, by="admin")
            return
        result = send(withdrawal_id=r.withdrawal_id, by="admin")
        STATS["retried"] += 1
        assert result["out_bill_no"] != r.out_bill_no
        r.out_bill_no, r.state = result["out_bill_no"], "approved"
        self.available -= r.amount
        self.held += r.amount

    # -- checks -----------------------------------------------------------------------------

    @invariant()
    def wallet_matches_the_model(self) -> None:
        if not hasattr(self, "referrer"):
            return
        try:
            wallet = self.core.app.repository.get(Wallet.create_id(self.referrer))
        except Exception:  # noqa: BLE001 - no commission yet, no wallet
            assert (self.pending, self.available, self.held, self.debt) == (0, 0, 0, 0)
            return
        r = self.referrer
        held = wallet.balance(acc.held(acc.member_commission_available(r)), "CNY")
        assert (
            wallet.commission_pending_total,
            wallet.commission_available,
            held,
            wallet.commission_debt,
        ) == (self.pending, self.available, self.held, self.debt)
        assert min(self.pending, self.available, self.held, self.debt) >= 0

    def teardown(self) -> None:
        if not hasattr(self, "referrer"):
            return
        project(self.core)
        assert set(journal_sums(self.core).values()) == {0}
        self.check_read_model()
        # everything refunded, released and settled: only what was paid out remains, owed
        for o in self.orders:
            if o.left:
                self.service.refund(
                    order_id=o.order_id,
                    out_refund_no=uuid4().hex,
                    amount_fen=o.left,
                    reason="end",
                    requested_by="station",
                )
        for r in self.requests:
            if r.state == "requested":
                self.core.withdrawals.reject(withdrawal_id=r.withdrawal_id, by="a", reason="end")
            elif r.state == "approved":
                self.core.withdrawals.record_payout_result(out_bill_no=r.out_bill_no, state="FAIL")
        self.core.commission.release_for(self.referrer, self.clock.now + timedelta(days=30))
        project(self.core)
        mine = nonzero(read_balances(self.core, f"member:{self.referrer}"))
        debt = read_balances(self.core, "platform").get(
            (commission_debt_account(self.referrer), "CNY"), 0
        )
        assert mine == {} and debt == -self.paid_out
        for e in self.referees:
            assert nonzero(read_balances(self.core, f"member:{e}")) == {
                (acc.member_card(e), "CNY"): TOP_UP
            }
        assert nonzero(read_balances(self.core, f"station:{self.station}")) == self.income_before

    def check_read_model(self) -> None:
        r = self.referrer
        read = read_balances(self.core, f"member:{r}")
        assert read.get((acc.member_commission_pending(r), "CNY"), 0) == self.pending
        assert read.get((acc.member_commission_available(r), "CNY"), 0) == self.available
        assert read.get((acc.held(acc.member_commission_available(r)), "CNY"), 0) == self.held
        assert all(v >= 0 for v in read.values())


def test_commission_and_withdrawals_keep_the_invariants(core: Core) -> None:
    CommissionAndWithdrawals.core = core
    STATS.clear()
    run_state_machine_as_test(
        CommissionAndWithdrawals,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    print("\ncommission and withdrawals:", ", ".join(f"{k}={v}" for k, v in sorted(STATS.items())))

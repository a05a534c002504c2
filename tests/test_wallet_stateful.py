"""Random interleavings of every wallet command against a model of every owned balance.

Each hypothesis sequence gets 2-3 fresh members and 1-2 fresh stations on the shared `core`,
runs up to ten commands (top-ups with bonus, card payments split between a station and the
platform, points earned and spent, holds on card / bonus / points, posting and voiding them,
station settlements, retries of an earlier command with the same key and reuses of a key for
a different request) and keeps in Python what every owned balance must be. Domain errors are
outcomes the model must have predicted, and after them nothing may have changed.

Checked (DESIGN.md section 8, invariants 1, 2 and 5):
- after every step, each aggregate (balances, open holds, number of events) equals the
  model and no owned balance is negative;
- after five steps and at the end of a sequence, the journal projection is caught up: every
  asset's journal legs sum to zero, no owned balance is negative in the read model, and the
  read model equals the model for every account of the sequence's members and stations;
- at the end of a sequence, the raw log decoded event by event (as audit.replay does) equals
  the model too, and each wallet rebuilt from the store equals the cached one;
- at the end of the run (and every fifth of a long run), audit.replay.replay_balances, a
  fresh replay of the whole log, equals the whole read model, and on the accounts of every
  sequence, what the models said.

Sequences: LEDGER_HYPOTHESIS_EXAMPLES (500 by default); `make soak` runs the soak copy with
10,000 (the default copy then steps aside, so `make proof` does not run both).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError
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

from audit.replay import replay_balances
from infra.bootstrap import Core
from ledger import accounts as acc
from ledger.accounts import CNY, PTS, held, is_owned, owner_of
from ledger.domain.station_account import StationAccount
from ledger.domain.wallet import Wallet
from ledger.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidAmount,
    NotFound,
    UnknownHold,
)
from ledger.ids import child, from_key
from ledger.journal import JournalEntry
from ledger.services.wallets import wallet_view
from projections.framework import ProjectionRunner
from projections.journal import JournalProjector
from support import journal_sums, nonzero, project

EXAMPLES = int(os.environ.get("LEDGER_HYPOTHESIS_EXAMPLES", "500"))
SOAK_EXAMPLES = 10_000
STEPS = 10
FULL_CHECK_EVERY = 5

BUCKETS = {
    "card": (acc.member_card, CNY),
    "card_bonus": (acc.member_card_bonus, CNY),
    "points": (acc.member_points, PTS),
}

Balances = dict[tuple[str, str], int]

# What to ask for, relative to what the model says is available: mostly a share of it, so
# that commands succeed often enough for balances to build up and be drawn down; often the
# boundaries (exactly everything, one more than everything, nothing); sometimes an absolute
# amount that may be far off.
Spec = tuple[str, int]
_share = st.integers(1, 100).map(lambda pct: ("pct", pct))
amounts: st.SearchStrategy[Spec] = st.one_of(
    _share,
    _share,
    st.sampled_from([("all", 0), ("zero", 0), ("over", 0)]),
    st.integers(1, 30_000).map(lambda n: ("abs", n)),
)


def one_in_ten() -> st.SearchStrategy[bool]:
    """True about one time in ten. (Hypothesis favours the ends of an integer range and the
    first and last of a sampled_from, so the rare case sits in the middle of a range.)"""
    return st.integers(0, 9).map(lambda n: n == 4)


def positive_or_zero(top: int) -> st.SearchStrategy[int]:
    """Mostly a positive amount, sometimes zero (which every command refuses)."""
    return st.tuples(one_in_ten(), st.integers(1, top)).map(lambda t: 0 if t[0] else t[1])


# A top-up's bonus: mostly one, often none, sometimes a negative one (refused).
bonuses = st.tuples(st.integers(0, 9), st.integers(1, 5_000)).map(
    lambda t: -1 if t[0] == 4 else (0 if t[0] in (5, 6, 7) else t[1])
)


def resolve(spec: Spec, available: int) -> int:
    how, n = spec
    if how == "pct":
        return max(1, available * n // 100)
    if how == "all":
        return available
    if how == "over":
        return available + 1
    if how == "zero":
        return 0
    return n


@dataclass
class Hold:
    hold_id: str
    member: UUID
    account: str
    asset: str
    amount: int
    state: str = "open"  # open | posted | voided
    closed_with: tuple[Any, dict[str, Any]] | None = None  # (fingerprint-ish args, result)


@dataclass
class Done:
    """A command that succeeded: how to send it again, what it answered, and a different
    request under the same key (None where the request has nothing to vary)."""

    what: str
    send: Callable[..., dict[str, Any]]
    kwargs: dict[str, Any]
    result: dict[str, Any]
    different: dict[str, Any] | None


STATS: dict[str, int] = defaultdict(int)


class WalletLedger(RuleBasedStateMachine):
    core: Core  # bound by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.seq = uuid4().hex[:12]
        self.counter = 0
        self.members: list[UUID] = []
        self.stations: list[UUID] = []
        self.model: Balances = defaultdict(int)
        self.versions: dict[UUID, int] = {}  # aggregate id -> events it must have
        self.holds: list[Hold] = []
        self.done: list[Done] = []
        self.settled_up_to: dict[UUID, int] = {}
        self.settlements: dict[tuple[UUID, int], tuple[int, dict[str, Any]]] = {}
        self.steps = 0
        self.step_started = 0.0
        self.rule_name = ""

    # -- helpers ----------------------------------------------------------------------------

    def key(self, what: str) -> str:
        self.counter += 1
        return f"{self.seq}-{what}-{self.counter}"

    def step(self, name: str) -> None:
        self.step_started = time.perf_counter()
        self.steps += 1
        self.rule_name = name
        STATS["steps"] += 1
        STATS[f"rule:{name}"] += 1

    def expect_error(self, error: type[Exception], call: Callable[[], Any]) -> None:
        with pytest.raises(error) as caught:
            call()
        assert type(caught.value) is error, caught.value
        STATS[f"error:{self.rule_name}:{error.__name__}"] += 1

    def wrote(self, aggregate_id: UUID, events: int = 1) -> None:
        """The model's count of events an aggregate holds (Opened included)."""
        self.versions[aggregate_id] = self.versions.get(aggregate_id, 1) + events

    def wallet_exists(self, member: UUID) -> bool:
        return Wallet.create_id(member) in self.versions

    def member_balances(self, member: UUID) -> Balances:
        owner = f"member:{member}"
        return {k: v for k, v in self.model.items() if v and owner_of(k[0]) == owner}

    def owners(self) -> set[str]:
        return {f"member:{m}" for m in self.members} | {f"station:{s}" for s in self.stations}

    def expected(self) -> Balances:
        return {k: v for k, v in self.model.items() if v}

    def choose(self, parties: list[UUID], pick: int, has: Callable[[UUID], int]) -> UUID:
        """Mostly one that has something to draw on, so that draws succeed often enough for
        balances, holds and settlements to build up; now and then any of them."""
        funded = [p for p in parties if has(p) > 0]
        pool = funded if funded and pick % 4 != 3 else parties
        return pool[pick // 4 % len(pool)]

    def remember(
        self,
        what: str,
        send: Callable[..., dict[str, Any]],
        kwargs: dict[str, Any],
        result: dict[str, Any],
        different: dict[str, Any] | None,
    ) -> None:
        self.done.append(Done(what, send, kwargs, result, different))
        STATS[f"ok:{what}"] += 1

    # -- sequence set-up --------------------------------------------------------------------

    @initialize(
        members=st.integers(2, 3),
        stations=st.integers(1, 2),
        opening=st.lists(
            st.tuples(positive_or_zero(40_000), st.integers(0, 3_000), st.integers(0, 3_000)),
            min_size=3,
            max_size=3,
        ),
        held_share=st.integers(0, 100),
    )
    def parties(
        self, members: int, stations: int, opening: list[tuple[int, int, int]], held_share: int
    ) -> None:
        """Fresh members and stations; most members start with a top-up, some with a bonus,
        the first often with points (a member without a top-up has no wallet yet, which is a
        case worth keeping). Each opening command is a commit, so they are kept few."""
        started = time.perf_counter()
        self.members = [uuid4() for _ in range(members)]
        self.stations = [uuid4() for _ in range(stations)]
        for s in self.stations:
            self.settled_up_to[s] = 0
        STATS["sequences"] += 1
        for i, (m, (amount, bonus, points)) in enumerate(zip(self.members, opening, strict=False)):
            if amount and points and i == 0:
                key = self.key("opening")
                self.core.wallets.earn_points(key=key, member_id=m, points=points)
                self.model[(acc.member_points(m), PTS)] += points
                self.wrote(Wallet.create_id(m))
            if amount:
                key = self.key("opening")
                self.core.wallets.top_up(key=key, member_id=m, amount=amount, bonus=bonus)
                self.model[(acc.member_card(m), CNY)] += amount
                self.model[(acc.member_card_bonus(m), CNY)] += bonus
                self.wrote(Wallet.create_id(m))
                STATS["ok:opening_top_up"] += 1
        # Half of the sequences start with a hold on the first member's card, so that posting
        # and voiding come up within ten steps.
        m = self.members[0]
        card = self.model[(acc.member_card(m), CNY)]
        if card and held_share % 2:
            amount = max(1, card * held_share // 100)
            placed = self.core.wallets.hold(
                key=self.key("opening-hold"), member_id=m, bucket="card", amount=amount
            )
            self.model[(acc.member_card(m), CNY)] -= amount
            self.model[(held(acc.member_card(m)), CNY)] += amount
            self.holds.append(Hold(placed["hold_id"], m, acc.member_card(m), CNY, amount))
            self.wrote(Wallet.create_id(m))
        STATS["ms:opening"] += int((time.perf_counter() - started) * 1000)

    # -- fuel card --------------------------------------------------------------------------

    @rule(
        who=st.integers(0, 2),
        amount=positive_or_zero(50_000),
        bonus=bonuses,
        source=st.sampled_from([acc.PROVIDER_WECHAT, acc.PROVIDER_ALIPAY]),
    )
    def top_up(self, who: int, amount: int, bonus: int, source: str) -> None:
        self.step("top_up")
        m = self.members[who % len(self.members)]
        kwargs = dict(
            key=self.key("top-up"), member_id=m, amount=amount, bonus=bonus, source=source
        )
        send = self.core.wallets.top_up
        if amount <= 0 or bonus < 0:
            self.expect_error(InvalidAmount, lambda: send(**kwargs))
            return
        card, card_bonus = acc.member_card(m), acc.member_card_bonus(m)
        result = send(**kwargs)
        self.model[(card, CNY)] += amount
        self.model[(card_bonus, CNY)] += bonus
        self.wrote(Wallet.create_id(m))
        assert result == {
            "entry_id": str(from_key("top_up", kwargs["key"])),
            "card": self.model[(card, CNY)],
            "card_bonus": self.model[(card_bonus, CNY)],
        }
        self.remember("top_up", send, kwargs, result, {**kwargs, "amount": amount + 1})

    @rule(
        who=st.integers(0, 11),
        where=st.integers(0, 1),
        spec=amounts,
        fee_bps=st.integers(0, 1_000),
        unbalanced=one_in_ten(),
    )
    def pay_with_card(
        self, who: int, where: int, spec: Spec, fee_bps: int, unbalanced: bool
    ) -> None:
        self.step("pay_with_card")
        m = self.choose(
            self.members,
            who,
            lambda m: (
                self.model[(acc.member_card(m), CNY)] + self.model[(acc.member_card_bonus(m), CNY)]
            ),
        )
        s = self.stations[where % len(self.stations)]
        card, card_bonus = acc.member_card(m), acc.member_card_bonus(m)
        have_card, have_bonus = self.model[(card, CNY)], self.model[(card_bonus, CNY)]
        amount = resolve(spec, have_card + have_bonus)
        fee = amount * fee_bps // 10_000
        to_station = amount - fee + int(unbalanced)
        destinations = [(acc.station_income(s), to_station), (acc.PLATFORM_REVENUE, fee)]
        kwargs = dict(key=self.key("pay"), member_id=m, amount=amount, destinations=destinations)
        send = self.core.wallets.pay_with_card
        if amount <= 0 or unbalanced:
            self.expect_error(InvalidAmount, lambda: send(**kwargs))
            return
        if amount > have_card + have_bonus:
            self.expect_error(InsufficientBalance, lambda: send(**kwargs))
            return
        result = send(**kwargs)
        from_card = min(have_card, amount)
        from_bonus = amount - from_card
        self.model[(card, CNY)] -= from_card
        self.model[(card_bonus, CNY)] -= from_bonus
        self.model[(acc.station_income(s), CNY)] += to_station
        self.wrote(Wallet.create_id(m))
        assert result == {
            "entry_id": str(from_key("card_payment", kwargs["key"])),
            "from_card": from_card,
            "from_bonus": from_bonus,
            "card": self.model[(card, CNY)],
            "card_bonus": self.model[(card_bonus, CNY)],
        }
        different = {
            **kwargs,
            "amount": amount + 1,
            "destinations": [(acc.station_income(s), to_station), (acc.PLATFORM_REVENUE, fee + 1)],
        }
        self.remember("pay_with_card", send, kwargs, result, different)

    # -- points -----------------------------------------------------------------------------

    @rule(who=st.integers(0, 2), points=positive_or_zero(5_000))
    def earn_points(self, who: int, points: int) -> None:
        self.step("earn_points")
        m = self.members[who % len(self.members)]
        kwargs = dict(key=self.key("earn"), member_id=m, points=points)
        send = self.core.wallets.earn_points
        if points <= 0:
            self.expect_error(InvalidAmount, lambda: send(**kwargs))
            return
        result = send(**kwargs)
        self.model[(acc.member_points(m), PTS)] += points
        self.wrote(Wallet.create_id(m))
        assert result == {
            "entry_id": str(from_key("points_earned", kwargs["key"])),
            "points": self.model[(acc.member_points(m), PTS)],
        }
        self.remember("earn_points", send, kwargs, result, {**kwargs, "points": points + 1})

    @rule(who=st.integers(0, 11), spec=amounts)
    def spend_points(self, who: int, spec: Spec) -> None:
        self.step("spend_points")
        m = self.choose(self.members, who, lambda m: self.model[(acc.member_points(m), PTS)])
        have = self.model[(acc.member_points(m), PTS)]
        points = resolve(spec, have)
        kwargs = dict(key=self.key("spend"), member_id=m, points=points)
        send = self.core.wallets.spend_points
        if points <= 0:
            self.expect_error(InvalidAmount, lambda: send(**kwargs))
            return
        if points > have:
            self.expect_error(InsufficientBalance, lambda: send(**kwargs))
            return
        result = send(**kwargs)
        self.model[(acc.member_points(m), PTS)] -= points
        self.wrote(Wallet.create_id(m))
        assert result == {
            "entry_id": str(from_key("points_spent", kwargs["key"])),
            "points": self.model[(acc.member_points(m), PTS)],
        }
        self.remember("spend_points", send, kwargs, result, {**kwargs, "points": points + 1})

    # -- two-phase holds --------------------------------------------------------------------

    @rule(who=st.integers(0, 11), bucket=st.sampled_from(sorted(BUCKETS)), spec=amounts)
    def hold(self, who: int, bucket: str, spec: Spec) -> None:
        self.step("hold")
        account_of, asset = BUCKETS[bucket]
        m = self.choose(self.members, who, lambda m: self.model[(account_of(m), asset)])
        account = account_of(m)
        have = self.model[(account, asset)]
        amount = resolve(spec, have)
        kwargs = dict(key=self.key("hold"), member_id=m, bucket=bucket, amount=amount)
        send = self.core.wallets.hold
        if amount <= 0:
            self.expect_error(InvalidAmount, lambda: send(**kwargs))
            return
        if amount > have:
            self.expect_error(InsufficientBalance, lambda: send(**kwargs))
            return
        result = send(**kwargs)
        hold_id = from_key("hold", kwargs["key"]).hex
        assert result == {"hold_id": hold_id, "amount": amount, "bucket": bucket}
        self.model[(account, asset)] -= amount
        self.model[(held(account), asset)] += amount
        self.holds.append(Hold(hold_id, m, account, asset, amount))
        self.wrote(Wallet.create_id(m))
        self.remember("hold", send, kwargs, result, {**kwargs, "amount": amount + 1})

    def pick_hold(self, pick: int) -> Hold:
        """An earlier hold (open, posted or voided), or now and then one that never existed."""
        if pick % (len(self.holds) + 1) == len(self.holds):
            m = self.members[pick % len(self.members)]
            never = from_key("hold", self.key("never-held")).hex
            return Hold(never, m, acc.member_card(m), CNY, 1, state="unknown")
        return self.holds[pick % (len(self.holds) + 1)]

    @precondition(lambda self: self.holds)
    @rule(
        pick=st.integers(0, 1_000),
        where=st.integers(0, 1),
        fee_bps=st.integers(0, 1_000),
        unbalanced=one_in_ten(),
    )
    def post_hold(self, pick: int, where: int, fee_bps: int, unbalanced: bool) -> None:
        self.step("post_hold")
        h = self.pick_hold(pick)
        s = self.stations[where % len(self.stations)]
        if h.asset == PTS:
            destinations = [(acc.POINTS_ISSUED, h.amount + int(unbalanced))]
            kind = "points_redeemed"
        else:
            fee = h.amount * fee_bps // 10_000
            to_station = h.amount - fee + int(unbalanced)
            destinations = [(acc.station_income(s), to_station), (acc.PLATFORM_REVENUE, fee)]
            kind = "fuel_payment"
        kwargs = dict(member_id=h.member, hold_id=h.hold_id, destinations=destinations, kind=kind)
        send = self.core.wallets.post_hold
        if not self.wallet_exists(h.member):
            self.expect_error(NotFound, lambda: send(**kwargs))
            return
        if h.state == "posted":
            assert h.closed_with is not None
            first_args, first_result = h.closed_with
            if (destinations, kind) == first_args:  # the same request again: first answer
                assert send(**kwargs) == first_result
                STATS["retry:post_hold"] += 1
            else:
                self.expect_error(IdempotencyConflict, lambda: send(**kwargs))
            return
        if h.state != "open":  # voided or never placed: there is no hold to post
            self.expect_error(UnknownHold, lambda: send(**kwargs))
            return
        if unbalanced:
            self.expect_error(InvalidAmount, lambda: send(**kwargs))
            return
        result = send(**kwargs)
        assert result == {
            "entry_id": str(child(UUID(hex=h.hold_id), "post")),
            "hold_id": h.hold_id,
            "state": "posted",
        }
        self.model[(held(h.account), h.asset)] -= h.amount
        for account, amount in destinations:
            if account.startswith(("member:", "station:")):  # platform accounts: not modelled
                self.model[(account, h.asset)] += amount
        h.state, h.closed_with = "posted", ((destinations, kind), result)
        self.wrote(Wallet.create_id(h.member))
        self.remember("post_hold", send, kwargs, result, None)

    @precondition(lambda self: self.holds)
    @rule(pick=st.integers(0, 1_000))
    def void_hold(self, pick: int) -> None:
        self.step("void_hold")
        h = self.pick_hold(pick)
        kwargs = dict(member_id=h.member, hold_id=h.hold_id)
        send = self.core.wallets.void_hold
        if not self.wallet_exists(h.member):
            self.expect_error(NotFound, lambda: send(**kwargs))
            return
        if h.state == "voided":  # voiding again is a retry of the same request
            assert h.closed_with is not None
            assert send(**kwargs) == h.closed_with[1]
            STATS["retry:void_hold"] += 1
            return
        if h.state != "open":  # posted or never placed
            self.expect_error(UnknownHold, lambda: send(**kwargs))
            return
        result = send(**kwargs)
        assert result == {
            "entry_id": str(child(UUID(hex=h.hold_id), "void")),
            "hold_id": h.hold_id,
            "state": "voided",
        }
        self.model[(held(h.account), h.asset)] -= h.amount
        self.model[(h.account, h.asset)] += h.amount
        h.state, h.closed_with = "voided", (None, result)
        self.wrote(Wallet.create_id(h.member))
        self.remember("void_hold", send, kwargs, result, None)

    # -- stations ---------------------------------------------------------------------------

    @precondition(
        lambda self: (
            self.settlements or any(self.model[(acc.station_income(s), CNY)] for s in self.stations)
        )
    )
    @rule(
        where=st.integers(0, 7),
        spec=amounts,
        position=st.sampled_from([1, 2, 3, 1, 0, -1]),
    )
    def settle(self, where: int, spec: Spec, position: int) -> None:
        """Settle part of a station's income. `position` > 0 moves the batch position on;
        0 repeats the last one; -1 goes back to the very start."""
        self.step("settle")
        s = self.choose(self.stations, where, lambda s: self.model[(acc.station_income(s), CNY)])
        income = self.model[(acc.station_income(s), CNY)]
        # Income is not an owned balance (the batch job decides what to settle), so the model
        # only settles what the journal says the station has earned.
        amount = min(resolve(spec, income), income)
        last = self.settled_up_to[s]
        up_to = last + position if position > 0 else (last if position == 0 else 0)
        kwargs = dict(station_id=s, amount=amount, up_to_position=up_to)
        send = self.core.stations.settle
        earlier = self.settlements.get((s, up_to))
        if earlier is not None:  # this batch position was settled: a retry of that batch
            first_amount, first_result = earlier
            if amount == first_amount:
                assert send(**kwargs) == first_result
                STATS["retry:settle"] += 1
            else:
                self.expect_error(IdempotencyConflict, lambda: send(**kwargs))
            return
        if up_to <= last or amount <= 0:
            self.expect_error(InvalidAmount, lambda: send(**kwargs))
            return
        result = send(**kwargs)
        self.model[(acc.station_income(s), CNY)] -= amount
        self.model[(acc.station_available(s), CNY)] += amount
        self.settled_up_to[s] = up_to
        self.wrote(StationAccount.create_id(s))
        assert result == {
            "entry_id": str(from_key("settlement", f"{s}:{up_to}")),
            "available": self.model[(acc.station_available(s), CNY)],
        }
        self.settlements[(s, up_to)] = (amount, result)
        self.remember("settle", send, kwargs, result, {**kwargs, "amount": amount + 1})

    # -- idempotency ------------------------------------------------------------------------

    @precondition(lambda self: self.done)
    @rule(pick=st.integers(0, 1_000))
    def retry_same_key(self, pick: int) -> None:
        """The same request again under the same key: the first answer, and no effect."""
        self.step("retry_same_key")
        done = self.done[pick % len(self.done)]
        assert done.send(**done.kwargs) == done.result
        STATS[f"retry:{done.what}"] += 1

    @precondition(lambda self: any(d.different is not None for d in self.done))
    @rule(pick=st.integers(0, 1_000))
    def reuse_key_for_another_request(self, pick: int) -> None:
        self.step("reuse_key")
        candidates = [d for d in self.done if d.different is not None]
        done = candidates[pick % len(candidates)]
        assert done.different is not None
        different = done.different
        self.expect_error(IdempotencyConflict, lambda: done.send(**different))

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def aggregates_match_the_model(self) -> None:
        """Every step: each aggregate's balances, open holds and number of events. A refused
        command or a retry must leave all three as they were."""
        now = time.perf_counter()
        if self.step_started:
            elapsed = int((now - self.step_started) * 1000)
            STATS["ms:commands"] += elapsed
            STATS[f"ms:rule:{self.rule_name}"] += elapsed
            self.step_started = 0.0
        for m in self.members:
            if self.wallet_exists(m):  # a wallet that must not exist is checked at the end
                self.check_wallet(m)
        for s in self.stations:
            if StationAccount.create_id(s) in self.versions:
                self.check_station(s)
        STATS["ms:aggregate_checks"] += int((time.perf_counter() - now) * 1000)

    def check_wallet(self, m: UUID) -> None:
        view = self.core.wallets.get(m)
        domain = {tuple(k.split("|")): v for k, v in view["balances"].items() if v}
        assert domain == self.member_balances(m)
        assert all(v >= 0 for v in view["balances"].values()), view
        assert view["holds"] == {
            h.hold_id: {"account": h.account, "asset": h.asset, "amount": h.amount}
            for h in self.holds
            if h.member == m and h.state == "open"
        }
        wallet = self.core.app.repository.get(Wallet.create_id(m))
        assert wallet.version == self.versions[Wallet.create_id(m)]

    def check_station(self, s: UUID) -> None:
        sid = StationAccount.create_id(s)
        account = self.core.app.repository.get(sid)
        assert isinstance(account, StationAccount)
        # The aggregate sees settlements only; income is the journal's business.
        assert account.available == self.model[(acc.station_available(s), CNY)] >= 0
        assert account.settled_up_to == self.settled_up_to[s]
        assert account.version == self.versions[sid]

    def check_nothing_opened(self) -> None:
        for m in self.members:
            if not self.wallet_exists(m):
                with pytest.raises(NotFound):
                    self.core.wallets.get(m)
        for s in self.stations:
            if StationAccount.create_id(s) not in self.versions:
                with pytest.raises(AggregateNotFoundError):
                    self.core.app.repository.get(StationAccount.create_id(s))

    @invariant()
    def read_model_matches_midway(self) -> None:
        # Projecting after every step costs more than the step; the end is checked by
        # teardown, so the middle of a sequence is checked every FULL_CHECK_EVERY steps.
        if self.steps and self.steps % FULL_CHECK_EVERY == 0 and self.steps < STEPS:
            self.check_read_model()

    def check_read_model(self) -> None:
        """Invariants 1, 2 and 5 against the journal projection."""
        started = time.perf_counter()
        STATS["read_model_checks"] += 1
        catch_up_journal(self.core)
        JOURNAL_SUMS.check(self.core)
        read = balances_of(self.core, self.owners())
        for (account, asset), value in read.items():
            assert value >= 0 or not is_owned(account), (account, asset, value)
        assert nonzero(read) == self.expected()
        STATS["ms:read_model_checks"] += int((time.perf_counter() - started) * 1000)

    def teardown(self) -> None:
        if not self.members:
            return
        started = time.perf_counter()
        for m in self.members:
            if self.wallet_exists(m):
                self.check_wallet(m)
                # The cached aggregate the commands ran on equals one rebuilt from the store.
                stored = self.core.app.repository.get(Wallet.create_id(m), version=2**62)
                assert wallet_view(stored) == self.core.wallets.get(m)
        self.check_nothing_opened()
        STATS["ms:teardown_aggregates"] += int((time.perf_counter() - started) * 1000)
        self.check_read_model()
        started = time.perf_counter()
        owners = self.owners()
        log = LOG.catch_up(self.core.app)
        replayed = {k: v for k, v in log.items() if owner_of(k[0]) in owners}
        assert nonzero(replayed) == self.expected()
        STATS["ms:replays"] += int((time.perf_counter() - started) * 1000)
        FINAL.update(self.expected())
        SEQUENCE_OWNERS.update(owners)
        STATS["sequences_checked"] += 1
        if STATS["sequences_checked"] % FULL_REPLAY_EVERY[0] == 0:
            check_full_replay(self.core)


def catch_up_journal(core: Core) -> None:
    """ProjectionRunner.run_until_caught_up for the journal projector alone, without the
    extra empty page at the end: a short page means the log has been read to its end."""
    runner = ProjectionRunner(core.app, core.read_pool, JOURNAL)
    while runner.run_once() >= runner.page_size:
        pass


def balances_of(core: Core, owners: set[str]) -> Balances:
    """support.read_balances for several owners in one query."""
    with core.read_pool.connection() as conn:
        rows = conn.execute(
            "SELECT account, asset, balance FROM read.account_balances WHERE owner = ANY(%s)",
            (sorted(owners),),
        ).fetchall()
    return {(a, s): n for a, s, n in rows}


JOURNAL = JournalProjector()
FULL_REPLAY_EVERY = [1_000]  # set per run: the end, and every fifth of a long run
# What every sequence of this test left behind, for the fresh replays of the whole log.
FINAL: Balances = {}
SEQUENCE_OWNERS: set[str] = set()


class LogReplay:
    """The raw log decoded the way audit.replay.replay_balances decodes it (every stored
    event's journal entry, in notification order, no read model involved), but kept across
    sequences and read on from where it stopped: replaying the whole, growing log at the end
    of each of hundreds of sequences would cost more than the sequences. The genuine
    replay_balances runs every FULL_REPLAY_EVERY sequences and once at the end."""

    def __init__(self) -> None:
        self.position = 0
        self.balances: Balances = defaultdict(int)

    def catch_up(self, app: Any) -> Balances:
        page = 5000
        while True:
            notifications = app.recorder.select_notifications(
                start=self.position, limit=page, inclusive_of_start=False
            )
            for n in notifications:
                entry = getattr(app.mapper.to_domain_event(n), "entry", None)
                if isinstance(entry, JournalEntry):
                    for leg in entry.legs:
                        self.balances[(leg.account, leg.asset)] += leg.amount
            if notifications:
                self.position = notifications[-1].id
            if len(notifications) < page:
                return self.balances


LOG = LogReplay()


class JournalSums:
    """Invariant 1 checked on the journal lines projected since the last check (each such
    slice must balance per asset, so the whole does); support.journal_sums checks the whole
    journal at every full replay. Summing the whole, growing journal at every check would
    make a 10,000-sequence soak quadratic."""

    def __init__(self) -> None:
        self.position = 0

    def check(self, core: Core) -> None:
        with core.read_pool.connection() as conn:
            rows = conn.execute(
                "SELECT asset, sum(amount), max(position) FROM read.journal_lines "
                "WHERE position > %s GROUP BY asset",
                (self.position,),
            ).fetchall()
        sums = {asset: int(total) for asset, total, _ in rows}
        assert sums == {asset: 0 for asset in sums}, sums
        self.position = max([self.position] + [top for _, _, top in rows])


JOURNAL_SUMS = JournalSums()


def check_full_replay(core: Core) -> None:
    """A fresh replay of the whole log equals the whole read model, and, on the accounts of
    every sequence run so far, what the models said."""
    started = time.perf_counter()
    project(core)
    sums = journal_sums(core)
    assert sums == {asset: 0 for asset in sums}, sums
    replayed = replay_balances(core.app)
    with core.read_pool.connection() as conn:
        rows = conn.execute("SELECT account, asset, balance FROM read.account_balances")
        read = {(a, s): n for a, s, n in rows.fetchall()}
    assert nonzero(replayed) == nonzero(read)
    mine = {k: v for k, v in replayed.items() if owner_of(k[0]) in SEQUENCE_OWNERS}
    assert nonzero(mine) == FINAL
    STATS["full_replays"] += 1
    STATS["ms:replays"] += int((time.perf_counter() - started) * 1000)


def _run(core: Core, examples: int) -> None:
    WalletLedger.core = core
    FULL_REPLAY_EVERY[0] = max(1_000, examples // 5)
    STATS.clear()
    FINAL.clear()
    SEQUENCE_OWNERS.clear()
    started = time.perf_counter()
    run_state_machine_as_test(
        WalletLedger,
        settings=settings(
            max_examples=examples,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.function_scoped_fixture,
                HealthCheck.filter_too_much,
            ],
        ),
    )
    check_full_replay(core)
    elapsed = time.perf_counter() - started
    report = ", ".join(f"{k}={v}" for k, v in sorted(STATS.items()))
    print(f"\nwallet state machine: {elapsed:.1f}s; {report}")
    assert STATS["sequences_checked"] > 0 and FINAL


@pytest.mark.skipif(
    EXAMPLES >= SOAK_EXAMPLES, reason="the soak copy runs this many sequences (make soak)"
)
def test_wallet_commands_keep_every_balance_in_step(core: Core) -> None:
    _run(core, EXAMPLES)


@pytest.mark.soak
@pytest.mark.skipif(
    EXAMPLES < SOAK_EXAMPLES,
    reason=f"soak: set LEDGER_HYPOTHESIS_EXAMPLES>={SOAK_EXAMPLES} (make soak)",
)
def test_wallet_commands_keep_every_balance_in_step_soak(core: Core) -> None:
    _run(core, max(EXAMPLES, SOAK_EXAMPLES))


def test_a_payment_cannot_draw_on_another_members_balance(fresh_core: Core) -> None:
    core = fresh_core  # its own database: the shared one must not get a negative balance
    a, b, station = uuid4(), uuid4(), uuid4()
    core.wallets.top_up(key=f"{a}-t", member_id=a, amount=1_000)
    core.wallets.top_up(key=f"{b}-t", member_id=b, amount=100)
    try:
        core.wallets.pay_with_card(
            key=f"{a}-p",
            member_id=a,
            amount=100,
            destinations=[(acc.station_income(station), 600), (acc.member_card(b), -500)],
        )
    except (InvalidAmount, InsufficientBalance):
        pass  # refused: what should happen
    project(core)
    b_card = (acc.member_card(b), CNY)
    assert balances_of(core, {f"member:{b}"}).get(b_card, 0) >= 0
    assert balances_of(core, {f"member:{b}"}) == {b_card: 100}

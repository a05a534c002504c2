"""The cache follower (src/infra/cache_follower.py): another process's write brings what this
process caches of the aggregates it changed up to date, without reloading their history;
this process's own writes cost no read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from infra.bootstrap import Core, build_core
from infra.cache_follower import CacheFollower
from infra.settings import Settings
from ledger import accounts as acc
from ledger.domain.wallet import Wallet


@pytest.fixture
def other_process(core: Core, settings: Settings) -> Iterator[Core]:
    other = build_core(settings, core.owner_url, migrate=False)
    yield other
    other.close()


@pytest.fixture
def follower(core: Core) -> Iterator[CacheFollower]:
    yield core.follow_other_writers()
    core.extras.pop("cache_follower").close()


def cached_version(core: Core, member: UUID) -> int | None:
    cache = core.app.repository.cache
    assert cache is not None
    try:
        return int(cache.get(Wallet.create_id(member)).version)
    except KeyError:
        return None


def state(aggregate: Any) -> dict[str, Any]:
    """An aggregate's attributes, those of the objects it holds included (no __eq__)."""
    return {k: state(v) if hasattr(v, "__dict__") else v for k, v in vars(aggregate).items()}


def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_another_process_write_brings_the_cached_copy_up_to_date(
    core: Core, other_process: Core, follower: CacheFollower
) -> None:
    w, bystander = uuid4(), uuid4()
    core.wallets.top_up(key=f"{w}-1", member_id=w, amount=1_000)
    core.wallets.top_up(key=f"{bystander}-1", member_id=bystander, amount=1_000)
    assert cached_version(core, w) == 2
    cache = core.app.repository.cache
    assert cache is not None
    before = cache.get(Wallet.create_id(w))

    for n in (1, 2):
        other_process.wallets.pay_with_card(
            key=f"{w}-other-{n}",
            member_id=w,
            amount=300,
            destinations=[(acc.PLATFORM_REVENUE, 300)],
        )
    until(lambda: cached_version(core, w) == 4)
    assert follower.fast_forwarded >= 1 and follower.evicted == 0
    assert before.version == 2  # the old copy was replaced, never changed under a reader
    assert cached_version(core, bystander) == 2  # unchanged elsewhere: kept as it was
    # The cached copy equals the stored state: a payment of exactly what is left goes through
    # at the first attempt, and one fen more is refused.
    fresh = cache.get(Wallet.create_id(w))
    stored = core.app.repository.get(Wallet.create_id(w), version=4)
    assert state(fresh) == state(stored)
    paid = core.wallets.pay_with_card(
        key=f"{w}-here", member_id=w, amount=400, destinations=[(acc.PLATFORM_REVENUE, 400)]
    )
    assert paid["card"] == 0
    assert cached_version(core, w) == 5


def test_a_copy_older_than_the_last_look_is_brought_up_to_date_too(
    core: Core, other_process: Core, follower: CacheFollower
) -> None:
    """A copy cached at a version older than where the follower last looked (read from the
    store while the other write was on its way) still gets every event it missed."""
    w = uuid4()
    core.wallets.top_up(key=f"{w}-1", member_id=w, amount=1_000)
    cache = core.app.repository.cache
    assert cache is not None
    old = core.app.repository.get(Wallet.create_id(w))  # version 2, a copy
    other_process.wallets.pay_with_card(
        key=f"{w}-a", member_id=w, amount=100, destinations=[(acc.PLATFORM_REVENUE, 100)]
    )
    until(lambda: cached_version(core, w) == 3)
    cache.put(Wallet.create_id(w), old)  # as if cached after the follower's look
    other_process.wallets.pay_with_card(
        key=f"{w}-b", member_id=w, amount=100, destinations=[(acc.PLATFORM_REVENUE, 100)]
    )
    until(lambda: cached_version(core, w) == 4)
    stored = core.app.repository.get(Wallet.create_id(w), version=4)
    assert state(cache.get(Wallet.create_id(w))) == state(stored)


def test_own_writes_are_not_read_back(core: Core, follower: CacheFollower) -> None:
    reads = follower.reads
    members = [uuid4() for _ in range(20)]
    for m in members:
        core.wallets.top_up(key=f"{m}-1", member_id=m, amount=100)
    time.sleep(1.0)  # the notifications have arrived by now
    assert follower.reads == reads
    assert all(cached_version(core, m) == 2 for m in members)

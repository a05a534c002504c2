"""The cache follower (src/infra/cache_follower.py): another process's write evicts what this
process caches of the aggregates it changed; this process's own writes cost no read."""

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


def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_another_process_write_evicts_the_stale_copy(
    core: Core, other_process: Core, follower: CacheFollower
) -> None:
    w, bystander = uuid4(), uuid4()
    core.wallets.top_up(key=f"{w}-1", member_id=w, amount=1_000)
    core.wallets.top_up(key=f"{bystander}-1", member_id=bystander, amount=1_000)
    assert cached_version(core, w) == 2

    other_process.wallets.pay_with_card(
        key=f"{w}-other", member_id=w, amount=300, destinations=[(acc.PLATFORM_REVENUE, 300)]
    )
    until(lambda: cached_version(core, w) is None)
    assert cached_version(core, bystander) == 2  # unchanged elsewhere: kept
    # This process now decides on the stored state, without colliding first.
    paid = core.wallets.pay_with_card(
        key=f"{w}-here", member_id=w, amount=700, destinations=[(acc.PLATFORM_REVENUE, 700)]
    )
    assert paid["card"] == 0
    assert cached_version(core, w) == 4


def test_own_writes_are_not_read_back(core: Core, follower: CacheFollower) -> None:
    reads = follower.reads
    members = [uuid4() for _ in range(20)]
    for m in members:
        core.wallets.top_up(key=f"{m}-1", member_id=m, amount=100)
    time.sleep(1.0)  # the notifications have arrived by now
    assert follower.reads == reads
    assert all(cached_version(core, m) == 2 for m in members)

"""The project's own write path: WalletService -> CommandRunner -> GroupCommitter."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from uuid import UUID, uuid4

from psycopg.sql import SQL

from infra.bootstrap import Core
from ledger import accounts as acc


@dataclass
class Counts:
    batches: int
    commands: int

    @classmethod
    def of(cls, core: Core) -> Counts:
        committer = core.committer
        return cls(getattr(committer, "batches", 0), getattr(committer, "commands", 0))

    def avg_batch_since(self, before: Counts) -> float:
        batches = self.batches - before.batches
        return (self.commands - before.commands) / batches if batches else 0.0


def fund(core: Core, members: list[UUID], amount: int, *, threads: int = 8) -> None:
    def top_up(member_id: UUID) -> None:
        core.wallets.top_up(key=f"bench-fund-{member_id}", member_id=member_id, amount=amount)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(top_up, members))


class CardPayments:
    """Pay 1..100 fen from a random member's card to a random station's income."""

    def __init__(self, core: Core, members: list[UUID], stations: int = 20) -> None:
        self.core = core
        self.members = members
        self.incomes = [acc.station_income(uuid4()) for _ in range(stations)]
        self.prefix = uuid4().hex[:12]  # keys are new in every run, on any database

    def __call__(self, rng: random.Random) -> None:
        amount = rng.randint(1, 100)
        self.core.wallets.pay_with_card(
            key=f"{self.prefix}-{rng.getrandbits(96):024x}",
            member_id=rng.choice(self.members),
            amount=amount,
            destinations=[(rng.choice(self.incomes), amount)],
        )


def stored_counts(core: Core) -> tuple[int, int]:
    """(events, receipts) in the ledger's tables."""
    with core.read_pool.connection() as conn:
        events = conn.execute(SQL("SELECT count(*) FROM public.ledger_events")).fetchone()
        receipts = conn.execute(SQL("SELECT count(*) FROM public.ledger_receipts")).fetchone()
    assert events is not None and receipts is not None
    return int(events[0]), int(receipts[0])


def average_state_bytes(core: Core) -> int:
    with core.read_pool.connection() as conn:
        row = conn.execute(
            SQL("SELECT coalesce(avg(length(state)), 0) FROM public.ledger_events")
        ).fetchone()
    assert row is not None
    return int(row[0])

"""The baseline: an eventsourcing application as the library's tutorial writes one.

One aggregate per wallet, one event per spend, and per command `repository.get`, a method
call and `app.save`: one transaction per command, no cache, no batching. It has its own
table (`naivebank_events`), made by the library (CREATE_TABLE=y).
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from infra.db import eventsourcing_env


class InsufficientFunds(Exception):
    pass


class NaiveWallet(Aggregate):
    @event("Opened")
    def __init__(self, owner: str, balance: int) -> None:
        self.owner = owner
        self.balance = balance

    def spend(self, amount: int) -> None:
        if amount > self.balance:
            raise InsufficientFunds(self.id)
        self._spent(amount=amount)

    @event("Spent")
    def _spent(self, amount: int) -> None:
        self.balance -= amount


class NaiveBank(Application[UUID]):
    def open_wallets(self, owners: list[str], balance: int) -> list[UUID]:
        wallets = [NaiveWallet(owner, balance) for owner in owners]
        self.save(*wallets)
        return [w.id for w in wallets]

    def spend(self, wallet_id: UUID, amount: int) -> None:
        wallet = self.repository.get(wallet_id)
        wallet.spend(amount)
        self.save(wallet)

    def balance(self, wallet_id: UUID) -> int:
        return int(self.repository.get(wallet_id).balance)


def naive_bank(url: str, *, pool_size: int = 8) -> NaiveBank:
    env = eventsourcing_env(url, pool_size=pool_size)
    env["CREATE_TABLE"] = "y"
    return NaiveBank(env=env)


def spend_retrying(bank: NaiveBank, wallet_id: UUID, amount: int, attempts: int = 10) -> int:
    """Spend, rerunning on a version conflict (two threads on one wallet); returns the
    number of conflicts met."""
    for conflicts in range(attempts):
        try:
            bank.spend(wallet_id, amount)
            return conflicts
        except IntegrityError:
            continue
    raise RuntimeError(f"wallet {wallet_id}: {attempts} conflicts in a row")

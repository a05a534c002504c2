"""Double-entry journal entries: legs that sum to zero per asset, refused otherwise."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ledger.accounts import ASSETS


class UnbalancedEntry(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    asset: str
    amount: int

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise UnbalancedEntry(f"leg amount must be an integer: {self.amount!r}")
        if self.asset not in ASSETS:
            raise UnbalancedEntry(f"unknown asset {self.asset!r}")
        if not self.account or " " in self.account:
            raise UnbalancedEntry(f"bad account name {self.account!r}")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One business movement. `kind` names it (top_up, fuel_payment ...); a reversal names
    the entry it reverses instead of editing it."""

    id: UUID
    kind: str
    legs: tuple[Leg, ...]
    reverses: UUID | None = None
    memo: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.legs) < 2:
            raise UnbalancedEntry("an entry needs at least two legs")
        sums: dict[str, int] = defaultdict(int)
        for leg in self.legs:
            sums[leg.asset] += leg.amount
        unbalanced = {asset: s for asset, s in sums.items() if s != 0}
        if unbalanced:
            raise UnbalancedEntry(f"entry {self.kind} does not balance: {unbalanced}")

    @classmethod
    def of(
        cls,
        entry_id: UUID,
        kind: str,
        legs: Iterable[tuple[str, str, int]],
        *,
        reverses: UUID | None = None,
        **memo: Any,
    ) -> JournalEntry:
        """Build from (account, asset, amount) tuples, dropping zero legs."""
        kept = tuple(Leg(a, s, n) for a, s, n in legs if n != 0)
        return cls(entry_id, kind, kept, reverses, memo)

    def reversal(self, entry_id: UUID, kind: str | None = None) -> JournalEntry:
        return JournalEntry(
            entry_id,
            kind or f"{self.kind}_reversed",
            tuple(Leg(leg.account, leg.asset, -leg.amount) for leg in self.legs),
            reverses=self.id,
        )

    def amount_for(self, account: str, asset: str) -> int:
        return sum(leg.amount for leg in self.legs if leg.account == account and leg.asset == asset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id.hex,
            "kind": self.kind,
            "legs": [[leg.account, leg.asset, leg.amount] for leg in self.legs],
            "reverses": self.reverses.hex if self.reverses else None,
            "memo": self.memo,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        return cls(
            UUID(data["id"]),
            data["kind"],
            tuple(Leg(a, s, n) for a, s, n in data["legs"]),
            UUID(data["reverses"]) if data.get("reverses") else None,
            data.get("memo") or {},
        )


def transfer(
    entry_id: UUID,
    kind: str,
    source: str,
    destination: str,
    amount: int,
    asset: str,
    **memo: Any,
) -> JournalEntry:
    """The common two-leg movement: `amount` of `asset` from `source` to `destination`."""
    return JournalEntry.of(
        entry_id, kind, [(source, asset, -amount), (destination, asset, amount)], **memo
    )

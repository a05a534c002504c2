"""A book of owned accounts with two-phase holds, shared by Wallet and StationAccount.

Every event a book records carries one journal entry; the book's balances are exactly the
sums of the legs on the accounts it owns, so the journal read model and the aggregate can
always be compared. A move that would take an owned balance below zero is refused before
any event exists.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.accounts import held, is_owned
from ledger.domain import copying
from ledger.errors import HoldAlreadyExists, InsufficientBalance, InvalidAmount, UnknownHold
from ledger.journal import JournalEntry, Leg


class Book(Aggregate):
    def _init_book(self, prefix: str) -> None:
        # Class-level annotations would become fields of the creation event, so state is
        # declared here.
        self.prefix: str = prefix
        self.balances: dict[tuple[str, str], int] = {}
        # hold id -> [account, asset, amount, id of the entry that placed it]
        self.holds: dict[str, list[Any]] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> Book:
        # The repository copies cached aggregates for every command; keep that cheap.
        clone = copying.clone(self)
        clone.balances = dict(self.balances)
        clone.holds = {k: list(v) for k, v in self.holds.items()}
        return clone

    def balance(self, account: str, asset: str) -> int:
        return self.balances.get((account, asset), 0)

    def owns(self, account: str) -> bool:
        return account.startswith(self.prefix)

    def check(self, entry: JournalEntry) -> None:
        """Refuse an entry that would take any owned balance of this book below zero."""
        after: dict[tuple[str, str], int] = {}
        for leg in entry.legs:
            if self.owns(leg.account):
                key = (leg.account, leg.asset)
                after[key] = after.get(key, self.balance(*key)) + leg.amount
        for (account, asset), value in after.items():
            if value < 0 and is_owned(account):
                raise InsufficientBalance(
                    f"{account} has {self.balance(account, asset)} {asset}",
                    account=account,
                    asset=asset,
                    available=self.balance(account, asset),
                    shortfall=-value,
                )

    def check_destinations(self, destinations: list[tuple[str, int]]) -> None:
        """Where a payment or a posted hold sends value: never a negative amount (that would
        take value instead), never an account another book owns (its owner would not know)."""
        for account, amount in destinations:
            if not isinstance(amount, int) or amount < 0:
                raise InvalidAmount("a destination amount must not be negative", account=account)
            if is_owned(account) and not self.owns(account):
                raise InvalidAmount(
                    "cannot pay into an account another owner holds", account=account
                )

    def _apply(self, entry: JournalEntry) -> None:
        for leg in entry.legs:
            if self.owns(leg.account):
                key = (leg.account, leg.asset)
                self.balances[key] = self.balances.get(key, 0) + leg.amount

    # -- two-phase holds (TigerBeetle's pending transfers) ---------------------------------

    def hold(self, hold_id: str, entry_id: UUID, account: str, asset: str, amount: int) -> None:
        if amount <= 0:
            raise InvalidAmount("a hold must be positive", amount=amount)
        if hold_id in self.holds:
            raise HoldAlreadyExists(f"hold {hold_id} exists", hold_id=hold_id)
        entry = JournalEntry.of(
            entry_id,
            "hold",
            [(account, asset, -amount), (held(account), asset, amount)],
            hold_id=hold_id,
        )
        self.check(entry)
        self._funds_held(entry=entry, hold_id=hold_id)

    def post_hold(
        self, hold_id: str, entry_id: UUID, destinations: list[tuple[str, int]], kind: str
    ) -> JournalEntry:
        """Complete a hold: its amount goes to `destinations`, which must add up to it."""
        account, asset, amount, _ = self._hold(hold_id)
        self.check_destinations(destinations)
        if sum(n for _, n in destinations) != amount:
            raise InvalidAmount("a posted hold must move exactly its amount", amount=amount)
        legs = [(held(account), asset, -amount)] + [(d, asset, n) for d, n in destinations]
        entry = JournalEntry.of(entry_id, kind, legs, hold_id=hold_id)
        self.check(entry)
        self._hold_posted(entry=entry, hold_id=hold_id)
        return entry

    def void_hold(self, hold_id: str, entry_id: UUID) -> JournalEntry:
        account, asset, amount, placed_by = self._hold(hold_id)
        entry = JournalEntry(
            entry_id,
            "hold_voided",
            (Leg(held(account), asset, -amount), Leg(account, asset, amount)),
            reverses=UUID(placed_by),
            memo={"hold_id": hold_id},
        )
        self._hold_voided(entry=entry, hold_id=hold_id)
        return entry

    def _hold(self, hold_id: str) -> list[Any]:
        try:
            return self.holds[hold_id]
        except KeyError:
            raise UnknownHold(f"no open hold {hold_id}", hold_id=hold_id) from None

    @event("FundsHeld")
    def _funds_held(self, entry: JournalEntry, hold_id: str) -> None:
        self._apply(entry)
        leg = next(leg for leg in entry.legs if leg.amount > 0)
        account = leg.account[: -len(":held")]
        self.holds[hold_id] = [account, leg.asset, leg.amount, entry.id.hex]

    @event("HoldPosted")
    def _hold_posted(self, entry: JournalEntry, hold_id: str) -> None:
        self._apply(entry)
        del self.holds[hold_id]

    @event("HoldVoided")
    def _hold_voided(self, entry: JournalEntry, hold_id: str) -> None:
        self._apply(entry)
        del self.holds[hold_id]

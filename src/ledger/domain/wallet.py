"""A member's wallet: fuel card, card bonus, points and commission, each an owned account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from ledger import accounts as acc
from ledger.accounts import CNY, PTS
from ledger.domain.loyalty_book import LoyaltyBook
from ledger.errors import InsufficientBalance, InvalidAmount
from ledger.ids import from_key
from ledger.journal import JournalEntry
from ledger.loyalty import lot_expiry


def _positive(amount: int, what: str) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidAmount(f"{what} must be a positive integer", amount=amount)


class Wallet(LoyaltyBook):
    # Points lots and commission (pending, available, debt) live in LoyaltyBook.
    @staticmethod
    def create_id(member_id: UUID) -> UUID:
        return from_key("wallet", str(member_id))

    @event("Opened")
    def __init__(self, member_id: UUID) -> None:
        self.member_id = member_id
        self._init_book(f"member:{member_id}:")

    # -- balances ---------------------------------------------------------------------------

    @property
    def card(self) -> int:
        return self.balance(acc.member_card(self.member_id), CNY)

    @property
    def card_bonus(self) -> int:
        return self.balance(acc.member_card_bonus(self.member_id), CNY)

    @property
    def points(self) -> int:
        return self.balance(acc.member_points(self.member_id), PTS)

    # -- fuel card --------------------------------------------------------------------------

    def top_up(
        self,
        entry_id: UUID,
        amount: int,
        *,
        source: str,
        bonus: int = 0,
        bonus_source: str = acc.PLATFORM_MARKETING,
        reference: str = "",
    ) -> JournalEntry:
        """Paid value goes to the card; a campaign's bonus goes to the card bonus."""
        _positive(amount, "top-up amount")
        if bonus < 0:
            raise InvalidAmount("bonus must not be negative", bonus=bonus)
        entry = JournalEntry.of(
            entry_id,
            "card_top_up",
            [
                (source, CNY, -amount),
                (acc.member_card(self.member_id), CNY, amount),
                (bonus_source, CNY, -bonus),
                (acc.member_card_bonus(self.member_id), CNY, bonus),
            ],
            reference=reference,
        )
        self._card_topped_up(entry=entry)
        return entry

    def card_split(self, amount: int) -> tuple[int, int]:
        """Cash value is spent before bonus value: the bonus is the platform's gift and the
        member keeps it longest; refunds return each part to where it came from."""
        from_card = min(self.card, amount)
        from_bonus = amount - from_card
        if from_bonus > self.card_bonus:
            raise InsufficientBalance(
                "card balance too low",
                account=acc.member_card(self.member_id),
                available=self.card + self.card_bonus,
                shortfall=amount - self.card - self.card_bonus,
            )
        return from_card, from_bonus

    def pay_with_card(
        self,
        entry_id: UUID,
        amount: int,
        destinations: list[tuple[str, int]],
        *,
        kind: str = "card_payment",
        **memo: Any,
    ) -> JournalEntry:
        """Spend `amount` from card then bonus; `destinations` say where it goes."""
        _positive(amount, "payment amount")
        self.check_destinations(destinations)
        if sum(n for _, n in destinations) != amount:
            raise InvalidAmount("destinations must add up to the amount", amount=amount)
        from_card, from_bonus = self.card_split(amount)
        legs = [
            (acc.member_card(self.member_id), CNY, -from_card),
            (acc.member_card_bonus(self.member_id), CNY, -from_bonus),
        ] + [(d, CNY, n) for d, n in destinations]
        entry = JournalEntry.of(entry_id, kind, legs, **memo)
        self.check(entry)
        self._card_spent(entry=entry)
        return entry

    def credit(self, entry: JournalEntry) -> None:
        """Record a movement prepared elsewhere that returns value to this wallet (refunds,
        restorations). It must still leave every owned balance non-negative."""
        self.check(entry)
        self._credited(entry=entry)

    def receive_red_packet(
        self, entry_id: UUID, amount: int, *, source: str = acc.PLATFORM_MARKETING, **memo: Any
    ) -> JournalEntry:
        """A campaign's cash-value gift (M16): card bonus, funded by marketing."""
        _positive(amount, "red packet")
        entry = JournalEntry.of(
            entry_id,
            "red_packet",
            [(source, CNY, -amount), (acc.member_card_bonus(self.member_id), CNY, amount)],
            **memo,
        )
        self._red_packet_received(entry=entry)
        return entry

    # -- points -----------------------------------------------------------------------------

    def earn_points(
        self, entry_id: UUID, points: int, *, kind: str = "points_earned", **memo: Any
    ) -> JournalEntry:
        _positive(points, "points")
        # Each earning is a lot; the caller's rules say when it expires (default: 12 months).
        memo.setdefault("expires_on", lot_expiry(datetime.now(UTC)).isoformat())
        memo["expires_on"] = str(memo["expires_on"])
        entry = JournalEntry.of(
            entry_id,
            kind,
            [(acc.POINTS_ISSUED, PTS, -points), (acc.member_points(self.member_id), PTS, points)],
            **memo,
        )
        self._points_earned(entry=entry)
        return entry

    def spend_points(
        self, entry_id: UUID, points: int, *, kind: str = "points_spent", **memo: Any
    ) -> JournalEntry:
        _positive(points, "points")
        entry = JournalEntry.of(
            entry_id,
            kind,
            [(acc.member_points(self.member_id), PTS, -points), (acc.POINTS_ISSUED, PTS, points)],
            **memo,
        )
        self.check(entry)
        self._points_spent(entry=entry)
        return entry

    # -- events -----------------------------------------------------------------------------

    @event("CardToppedUp")
    def _card_topped_up(self, entry: JournalEntry) -> None:
        self._apply(entry)

    @event("CardSpent")
    def _card_spent(self, entry: JournalEntry) -> None:
        self._apply(entry)

    @event("Credited")
    def _credited(self, entry: JournalEntry) -> None:
        self._apply(entry)

    @event("RedPacketReceived")
    def _red_packet_received(self, entry: JournalEntry) -> None:
        self._apply(entry)

    @event("PointsEarned")
    def _points_earned(self, entry: JournalEntry) -> None:
        self._apply(entry)

    @event("PointsSpent")
    def _points_spent(self, entry: JournalEntry) -> None:
        self._apply(entry)

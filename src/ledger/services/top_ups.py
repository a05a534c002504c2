"""Fuel-card top-ups through a payment provider, with bonus tiers ("top up 500, get 20")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ledger import accounts as acc
from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.fuel_order import PROVIDER_METHODS
from ledger.domain.top_up import TopUp
from ledger.errors import InvalidAmount, NotFound, OrderNotPayable
from ledger.ids import from_key
from ledger.services.wallets import open_wallet

MIN_TOP_UP_FEN = 1_000
MAX_TOP_UP_FEN = 5_000_000


@dataclass(frozen=True)
class BonusTier:
    threshold_fen: int
    bonus_fen: int


def parse_tiers(text: str) -> tuple[BonusTier, ...]:
    """'50000:2000,100000:5000' -> tiers; the highest threshold reached applies."""
    tiers = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        threshold, bonus = part.split(":")
        tiers.append(BonusTier(int(threshold), int(bonus)))
    return tuple(sorted(tiers, key=lambda t: t.threshold_fen))


def bonus_for(amount_fen: int, tiers: Sequence[BonusTier]) -> int:
    reached = [t.bonus_fen for t in tiers if amount_fen >= t.threshold_fen]
    return reached[-1] if reached else 0


def top_up_view(top_up: TopUp) -> dict[str, Any]:
    return {
        "top_up_id": str(top_up.id),
        "out_trade_no": top_up.out_trade_no,
        "member_id": str(top_up.member_id),
        "method": top_up.method,
        "amount_fen": top_up.amount_fen,
        "bonus_fen": top_up.bonus_fen,
        "status": top_up.status,
        "expires_at": top_up.expires_at.isoformat(),
    }


class TopUpService:
    def __init__(
        self,
        runner: CommandRunner,
        *,
        tiers: Sequence[BonusTier],
        clock: Callable[[], datetime],
        ttl: timedelta = timedelta(minutes=15),
    ) -> None:
        self.runner = runner
        self.tiers = tuple(tiers)
        self.clock = clock
        self.ttl = ttl

    def create(self, *, member_id: UUID, key: str, amount_fen: int, method: str) -> dict[str, Any]:
        if method not in PROVIDER_METHODS:
            raise InvalidAmount(f"top-ups are paid by {', '.join(PROVIDER_METHODS)}")
        if not isinstance(amount_fen, int) or not MIN_TOP_UP_FEN <= amount_fen <= MAX_TOP_UP_FEN:
            raise InvalidAmount(
                f"top-up must be {MIN_TOP_UP_FEN}..{MAX_TOP_UP_FEN} fen", amount_fen=amount_fen
            )
        command_id = from_key("create-top-up", f"{member_id}:{key}")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            top_up = uow.add(
                TopUp(
                    member_id=member_id,
                    top_up_key=key,
                    method=method,
                    amount_fen=amount_fen,
                    bonus_fen=bonus_for(amount_fen, self.tiers),
                    expires_at=self.clock() + self.ttl,
                )
            )
            return top_up_view(top_up)

        return self.runner.run(command_id, ["top-up", amount_fen, method], decide)

    def get(self, uow: UnitOfWork, top_up_id: UUID, member_id: UUID | None = None) -> TopUp:
        top_up = uow.find(TopUp, top_up_id)
        if top_up is None or (member_id is not None and top_up.member_id != member_id):
            raise NotFound(f"no top-up {top_up_id}")
        return top_up

    def expire(self, *, top_up_id: UUID) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            top_up = self.get(uow, top_up_id)
            if self.clock() < top_up.expires_at:
                raise OrderNotPayable("top-up has not expired yet", status=top_up.status)
            top_up.expire()
            return top_up_view(top_up)

        return self.runner.run(from_key("expire-top-up", str(top_up_id)), ["expire"], decide)


def apply_top_up_payment(
    uow: UnitOfWork, top_up: TopUp, provider: str, transaction_id: str, paid_at: datetime
) -> None:
    """Credit the card with what was paid and the bonus promised at creation."""
    wallet = open_wallet(uow, top_up.member_id)
    wallet.top_up(
        top_up.id,
        top_up.amount_fen,
        source=acc.provider(provider),
        bonus=top_up.bonus_fen,
        reference=transaction_id,
    )
    top_up.mark_paid(transaction_id, paid_at)

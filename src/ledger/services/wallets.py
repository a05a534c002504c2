"""Wallet commands: top-ups, card payments, points, and two-phase holds."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ledger import accounts as acc
from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.wallet import Wallet
from ledger.errors import InvalidAmount, NotFound
from ledger.ids import child, from_key

HOLDABLE = {
    "card": (acc.member_card, acc.CNY),
    "card_bonus": (acc.member_card_bonus, acc.CNY),
    "points": (acc.member_points, acc.PTS),
    "commission": (acc.member_commission_available, acc.CNY),
}


def open_wallet(uow: UnitOfWork, member_id: UUID) -> Wallet:
    return uow.get_or_create(Wallet, Wallet.create_id(member_id), lambda: Wallet(member_id))


def wallet_view(wallet: Wallet) -> dict[str, Any]:
    return {
        "member_id": str(wallet.member_id),
        "balances": {f"{a}|{s}": n for (a, s), n in sorted(wallet.balances.items())},
        "holds": {
            k: {"account": v[0], "asset": v[1], "amount": v[2]} for k, v in wallet.holds.items()
        },
    }


class WalletService:
    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def top_up(
        self,
        *,
        key: str,
        member_id: UUID,
        amount: int,
        bonus: int = 0,
        source: str = acc.PROVIDER_WECHAT,
    ) -> dict[str, Any]:
        command_id = from_key("top_up", key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = open_wallet(uow, member_id)
            entry = wallet.top_up(command_id, amount, source=source, bonus=bonus, reference=key)
            return {"entry_id": str(entry.id), "card": wallet.card, "card_bonus": wallet.card_bonus}

        payload = ["top_up", str(member_id), amount, bonus, source]
        return self.runner.run(command_id, payload, decide)

    def pay_with_card(
        self, *, key: str, member_id: UUID, amount: int, destinations: list[tuple[str, int]]
    ) -> dict[str, Any]:
        command_id = from_key("card_payment", key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = open_wallet(uow, member_id)
            entry = wallet.pay_with_card(command_id, amount, destinations, reference=key)
            return {
                "entry_id": str(entry.id),
                "from_card": -entry.amount_for(acc.member_card(member_id), acc.CNY),
                "from_bonus": -entry.amount_for(acc.member_card_bonus(member_id), acc.CNY),
                "card": wallet.card,
                "card_bonus": wallet.card_bonus,
            }

        payload = ["card_payment", str(member_id), amount, destinations]
        return self.runner.run(command_id, payload, decide)

    def earn_points(self, *, key: str, member_id: UUID, points: int) -> dict[str, Any]:
        command_id = from_key("points_earned", key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = open_wallet(uow, member_id)
            wallet.earn_points(command_id, points, reference=key)
            return {"entry_id": str(command_id), "points": wallet.points}

        return self.runner.run(command_id, ["earn", str(member_id), points], decide)

    def spend_points(self, *, key: str, member_id: UUID, points: int) -> dict[str, Any]:
        command_id = from_key("points_spent", key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = open_wallet(uow, member_id)
            wallet.spend_points(command_id, points, reference=key)
            return {"entry_id": str(command_id), "points": wallet.points}

        return self.runner.run(command_id, ["spend", str(member_id), points], decide)

    def hold(self, *, key: str, member_id: UUID, bucket: str, amount: int) -> dict[str, Any]:
        if bucket not in HOLDABLE:
            raise InvalidAmount(f"cannot hold from {bucket!r}", bucket=bucket)
        account_of, asset = HOLDABLE[bucket]
        command_id = from_key("hold", key)
        hold_id = command_id.hex

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = open_wallet(uow, member_id)
            wallet.hold(hold_id, command_id, account_of(member_id), asset, amount)
            return {"hold_id": hold_id, "amount": amount, "bucket": bucket}

        return self.runner.run(command_id, ["hold", str(member_id), bucket, amount], decide)

    def post_hold(
        self, *, member_id: UUID, hold_id: str, destinations: list[tuple[str, int]], kind: str
    ) -> dict[str, Any]:
        command_id = child(UUID(hex=hold_id), "post")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = self._existing(uow, member_id)
            entry = wallet.post_hold(hold_id, command_id, destinations, kind)
            return {"entry_id": str(entry.id), "hold_id": hold_id, "state": "posted"}

        return self.runner.run(command_id, ["post", hold_id, destinations, kind], decide)

    def void_hold(self, *, member_id: UUID, hold_id: str) -> dict[str, Any]:
        # Posting and voiding share the hold's fate: whichever comes first wins, and the
        # other collides on the receipt of the hold's close.
        command_id = child(UUID(hex=hold_id), "void")

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            wallet = self._existing(uow, member_id)
            entry = wallet.void_hold(hold_id, command_id)
            return {"entry_id": str(entry.id), "hold_id": hold_id, "state": "voided"}

        return self.runner.run(command_id, ["void", hold_id], decide)

    def get(self, member_id: UUID) -> dict[str, Any]:
        """The domain's own view (for audits and tests; the API reads projections)."""
        try:
            wallet: Wallet = self.runner.app.repository.get(Wallet.create_id(member_id))
        except Exception as e:  # noqa: BLE001 - AggregateNotFoundError and friends
            raise NotFound(f"no wallet for member {member_id}") from e
        assert isinstance(wallet, Wallet)
        return wallet_view(wallet)

    @staticmethod
    def _existing(uow: UnitOfWork, member_id: UUID) -> Wallet:
        wallet = uow.find(Wallet, Wallet.create_id(member_id))
        if wallet is None:
            raise NotFound(f"no wallet for member {member_id}")
        return wallet

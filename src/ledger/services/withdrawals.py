"""Withdrawals (SPEC M12, P5): members withdraw available commission, stations their settled
income; an admin reviews; the payout goes out once per out-bill number.

Rules (settings): a minimum amount, a fee in basis points (rounded DOWN, taken out of the
amount: the owner receives amount - fee), and a daily limit per owner on what is requested
(business days in Asia/Shanghai; a rejected request gives its share back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger import accounts as acc
from ledger.commands import CommandRunner, UnitOfWork
from ledger.domain.book import Book
from ledger.domain.member import Member
from ledger.domain.station_account import StationAccount
from ledger.domain.wallet import Wallet
from ledger.domain.withdrawal import CHANNELS, Withdrawal, WithdrawalDay, parse_out_bill_no
from ledger.errors import InsufficientBalance, InvalidAmount, NotFound, WithdrawalNotAllowed
from ledger.ids import child, from_key
from ledger.journal import transfer
from ledger.loyalty import business_day
from ledger.money import apply_bps

FINAL_SUCCESS = "SUCCESS"
FINAL_FAILURES = ("FAIL", "CANCELLED")
REAL_NAME_FROM_FEN = 200_000  # WeChat wants the payee's real name from 2,000 yuan
BANK_FIELDS = ("bank_name", "account_name", "account_no")


@dataclass(frozen=True)
class WithdrawalRules:
    min_fen: int = 100
    fee_bps: int = 0
    daily_limit_fen: int = 500_000


def withdrawal_view(w: Withdrawal) -> dict[str, Any]:
    return {
        "withdrawal_id": str(w.id),
        "owner": w.owner,
        "account": w.account,
        "amount_fen": w.amount_fen,
        "fee_fen": w.fee_fen,
        "net_fen": w.net_fen,
        "channel": w.channel,
        "state": w.state,
        "attempt": w.attempt,
        "out_bill_no": w.out_bill_no,
        "transfer_bill_no": w.transfer_bill_no,
        "provider_state": w.provider_state,
        "reason": w.reason,
    }


def _repay_debt(book: Book, entry_id: UUID) -> None:
    if isinstance(book, Wallet):
        book.repay_commission_debt(entry_id)


def payout_destination(channel: str) -> str:
    return acc.PROVIDER_WECHAT if channel == "wechat" else acc.BANK


class WithdrawalService:
    def __init__(
        self,
        runner: CommandRunner,
        *,
        rules: WithdrawalRules | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.runner = runner
        self.rules = rules or WithdrawalRules()
        self.clock = clock

    # -- requests ---------------------------------------------------------------------------

    def request_for_member(
        self,
        *,
        member_id: UUID,
        key: str,
        amount_fen: int,
        channel: str = "wechat",
        bank: dict[str, str] | None = None,
        real_name: str | None = None,
    ) -> dict[str, Any]:
        def book(uow: UnitOfWork) -> tuple[Book, str, dict[str, Any]]:
            wallet = uow.find(Wallet, Wallet.create_id(member_id))
            if wallet is None:
                raise InsufficientBalance("no commission to withdraw", available=0)
            wallet.check_no_commission_debt()
            payee = self._bank(bank) if channel == "bank" else self._wechat(uow, member_id)
            if real_name:
                payee["real_name"] = real_name
            return wallet, acc.member_commission_available(member_id), payee

        payload = ["member", amount_fen, channel, bank, real_name]
        return self._request(f"member:{member_id}", key, amount_fen, channel, book, payload)

    def request_for_station(
        self,
        *,
        station_id: UUID,
        key: str,
        amount_fen: int,
        channel: str = "bank",
        bank: dict[str, str] | None = None,
        openid: str | None = None,
        real_name: str | None = None,
    ) -> dict[str, Any]:
        def book(uow: UnitOfWork) -> tuple[Book, str, dict[str, Any]]:
            account = uow.find(StationAccount, StationAccount.create_id(station_id))
            if account is None:
                raise InsufficientBalance("no settled income to withdraw", available=0)
            if channel == "wechat" and not openid:
                raise InvalidAmount("a WeChat payout needs the payee's openid")
            payee = self._bank(bank) if channel == "bank" else {"openid": openid}
            if real_name:
                payee["real_name"] = real_name
            return account, acc.station_available(station_id), payee

        payload = ["station", amount_fen, channel, bank, openid, real_name]
        return self._request(f"station:{station_id}", key, amount_fen, channel, book, payload)

    def _request(
        self,
        owner: str,
        key: str,
        amount: int,
        channel: str,
        book_of: Callable[[UnitOfWork], tuple[Book, str, dict[str, Any]]],
        payload: list[Any],
    ) -> dict[str, Any]:
        if channel not in CHANNELS:
            raise InvalidAmount(f"channel must be one of {', '.join(CHANNELS)}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < self.rules.min_fen:
            raise WithdrawalNotAllowed(
                f"the least one can withdraw is {self.rules.min_fen} fen",
                min_fen=self.rules.min_fen,
            )
        fee = apply_bps(amount, self.rules.fee_bps)
        withdrawal_id = Withdrawal.create_id(owner, key)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            book, account, payee = book_of(uow)
            net = amount - fee
            if channel == "wechat" and net >= REAL_NAME_FROM_FEN and not payee.get("real_name"):
                raise WithdrawalNotAllowed("from 2,000 yuan WeChat needs the payee's real name")
            day = business_day(self.clock()).isoformat()
            uow.get_or_create(
                WithdrawalDay,
                WithdrawalDay.create_id(owner, day),
                lambda: WithdrawalDay(owner, day),
            ).add(amount, self.rules.daily_limit_fen)
            w = uow.add(
                Withdrawal(
                    owner=owner,
                    key=key,
                    book_id=book.id,
                    account=account,
                    amount_fen=amount,
                    fee_fen=fee,
                    channel=channel,
                    payee=payee,
                    day=day,
                )
            )
            book.hold(w.hold_id, UUID(hex=w.hold_id), account, acc.CNY, amount)
            return withdrawal_view(w)

        return self.runner.run(
            child(withdrawal_id, "request"), ["withdraw", owner, *payload], decide
        )

    @staticmethod
    def _wechat(uow: UnitOfWork, member_id: UUID) -> dict[str, Any]:
        member = uow.find(Member, member_id)
        if member is None:
            raise NotFound(f"no member {member_id}")
        if not member.openid:  # an Alipay-only member has no WeChat balance to receive it
            raise WithdrawalNotAllowed(
                "a WeChat payout needs a WeChat sign-in first (POST /v1/auth/wechat-login)"
            )
        return {"openid": member.openid}

    @staticmethod
    def _bank(bank: dict[str, str] | None) -> dict[str, Any]:
        if not bank or any(not str(bank.get(f, "")).strip() for f in BANK_FIELDS):
            raise InvalidAmount(f"a bank payout needs {', '.join(BANK_FIELDS)}")
        return {f: str(bank[f]).strip() for f in BANK_FIELDS}

    # -- review -----------------------------------------------------------------------------

    def _withdrawal(self, uow: UnitOfWork, withdrawal_id: UUID) -> Withdrawal:
        try:
            w = uow.find(Withdrawal, withdrawal_id)
        except TypeError:
            w = None
        if w is None:
            raise NotFound(f"no withdrawal {withdrawal_id}")
        return w

    def approve(self, *, withdrawal_id: UUID, by: str) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            w = self._withdrawal(uow, withdrawal_id)
            book = uow.get(Book, w.book_id)
            if isinstance(book, Wallet):
                book.check_no_commission_debt()
            w.approve(by)
            return withdrawal_view(w)

        return self.runner.run(from_key("withdrawal-approve", str(withdrawal_id)), ["a"], decide)

    def reject(self, *, withdrawal_id: UUID, by: str, reason: str) -> dict[str, Any]:
        def decide(uow: UnitOfWork) -> dict[str, Any]:
            w = self._withdrawal(uow, withdrawal_id)
            w.reject(by, reason)
            book = uow.get(Book, w.book_id)
            book.void_hold(w.hold_id, child(w.id, "void:rejected"))
            _repay_debt(book, child(w.id, "repay:rejected"))
            uow.get(WithdrawalDay, WithdrawalDay.create_id(w.owner, w.day)).give_back(w.amount_fen)
            return withdrawal_view(w)

        payload = ["reject", reason]
        return self.runner.run(from_key("withdrawal-reject", str(withdrawal_id)), payload, decide)

    def retry(self, *, withdrawal_id: UUID, by: str) -> dict[str, Any]:
        """After a failed payout: hold the amount again and send under a new number."""

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            w = self._withdrawal(uow, withdrawal_id)
            book = uow.get(Book, w.book_id)
            if isinstance(book, Wallet):
                book.check_no_commission_debt()
            w.retry(by)
            book.hold(w.hold_id, UUID(hex=w.hold_id), w.account, acc.CNY, w.amount_fen)
            return withdrawal_view(w)

        command_id = from_key("withdrawal-retry", f"{withdrawal_id}:{self._attempt(withdrawal_id)}")
        return self.runner.run(command_id, ["retry"], decide)

    def _attempt(self, withdrawal_id: UUID) -> int:
        try:
            w: Any = self.runner.app.repository.get(withdrawal_id)
        except AggregateNotFoundError:
            raise NotFound(f"no withdrawal {withdrawal_id}") from None
        if not isinstance(w, Withdrawal):
            raise NotFound(f"no withdrawal {withdrawal_id}")
        return w.attempt

    # -- the payout's progress --------------------------------------------------------------

    def record_payout_sent(
        self,
        *,
        out_bill_no: str,
        transfer_bill_no: str | None,
        provider_state: str,
        package: str = "",
    ) -> dict[str, Any]:
        """The provider accepted the bill (or the bank file has its row): money not moved."""
        withdrawal_id = self._id_of(out_bill_no)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            w = self._withdrawal(uow, withdrawal_id)
            if w.is_current(out_bill_no) and w.state in ("approved", "sent"):
                w.payout_sent(transfer_bill_no, provider_state, package)
            return withdrawal_view(w)

        command_id = from_key("payout-sent", f"{out_bill_no}:{provider_state}")
        return self.runner.run(command_id, ["sent", transfer_bill_no, provider_state], decide)

    def record_payout_result(
        self,
        *,
        out_bill_no: str,
        state: str,
        transfer_bill_no: str | None = None,
        fail_reason: str = "",
        amount_fen: int | None = None,
    ) -> dict[str, Any]:
        """The provider's final word, applied once however often it comes: SUCCESS posts the
        hold and moves the money out, FAIL or CANCELLED voids the hold."""
        if state != FINAL_SUCCESS and state not in FINAL_FAILURES:
            raise InvalidAmount(f"{state} is not a final payout state", state=state)
        withdrawal_id = self._id_of(out_bill_no)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            w = self._withdrawal(uow, withdrawal_id)
            view = withdrawal_view(w)
            if not w.is_current(out_bill_no) or w.state not in ("approved", "sent"):
                return {**view, "applied": False}  # an older attempt, or applied already
            if amount_fen is not None and amount_fen != w.net_fen:
                raise InvalidAmount(
                    "the payout amount differs from the withdrawal",
                    expected=w.net_fen,
                    reported=amount_fen,
                )
            book = uow.get(Book, w.book_id)
            if state == FINAL_SUCCESS:
                book.post_hold(
                    w.hold_id,
                    child(w.id, f"post:{w.attempt}"),
                    [(acc.PAYOUTS_IN_TRANSIT, w.net_fen), (acc.PLATFORM_REVENUE, w.fee_fen)],
                    "withdrawal_posted",
                )
                out = transfer(
                    child(w.id, f"out:{w.attempt}"),
                    "payout_confirmed",
                    acc.PAYOUTS_IN_TRANSIT,
                    payout_destination(w.channel),
                    w.net_fen,
                    acc.CNY,
                    out_bill_no=out_bill_no,
                    transfer_bill_no=transfer_bill_no or "",
                )
                w.paid_out(transfer_bill_no, out)
            else:
                book.void_hold(w.hold_id, child(w.id, f"void:{w.attempt}"))
                _repay_debt(book, child(w.id, f"repay:{w.attempt}"))
                w.payout_failed(state, fail_reason or state)
            return {**withdrawal_view(w), "applied": True}

        command_id = from_key("payout-result", f"{out_bill_no}:{state}")
        return self.runner.run(command_id, ["result", out_bill_no, state], decide)

    @staticmethod
    def _id_of(out_bill_no: str) -> UUID:
        parsed = parse_out_bill_no(out_bill_no)
        if parsed is None:
            raise NotFound(f"no withdrawal with out-bill number {out_bill_no}")
        return parsed[0]

    def get(self, withdrawal_id: UUID) -> dict[str, Any]:
        """The domain's own view, with the payee (the payout worker needs it)."""
        try:
            w: Any = self.runner.app.repository.get(withdrawal_id)
        except AggregateNotFoundError:
            raise NotFound(f"no withdrawal {withdrawal_id}") from None
        if not isinstance(w, Withdrawal):
            raise NotFound(f"no withdrawal {withdrawal_id}")
        return {**withdrawal_view(w), "payee": dict(w.payee)}

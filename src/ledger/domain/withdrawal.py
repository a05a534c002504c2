"""A withdrawal (SPEC M12, P5): one request to pay out a member's available commission or a
station's settled income, two-phase like TigerBeetle's pending transfers.

    requested --approve--> approved --sent--> sent --SUCCESS--> paid
        |                      \\________________/ \\--FAIL/CANCELLED--> failed --retry--> approved
        \\--reject--> rejected

The money is held on the owner's book from the request on (Book.hold). An admin approves
(the out-bill number is fixed then) or rejects (the hold is voided). The payout is sent to
the provider once per out-bill number; a resend after a timeout reuses the number. The
provider's final word posts the hold (SUCCESS: to `payouts:in_transit`, the fee to
`platform:revenue`, and out of transit to the provider or the bank) or voids it (FAIL,
CANCELLED: the balance is back). Only after such a failure may a retry take a new number,
with a new hold.
"""

from __future__ import annotations

import string
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain import copying
from ledger.errors import WithdrawalNotAllowed
from ledger.ids import child, from_key
from ledger.journal import JournalEntry

CHANNELS = ("wechat", "bank")
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_DIGITS = 22  # 62**22 > 2**128


def out_bill_no(withdrawal_id: UUID, attempt: int) -> str:
    """'W' + the id in base 62 + the attempt: 25 letters and digits (WeChat allows 32)."""
    n, digits = withdrawal_id.int, []
    for _ in range(_ID_DIGITS):
        n, r = divmod(n, 62)
        digits.append(_ALPHABET[r])
    return "W" + "".join(reversed(digits)) + f"{attempt:02d}"


def parse_out_bill_no(number: str) -> tuple[UUID, int] | None:
    if len(number) != 1 + _ID_DIGITS + 2 or number[0] != "W" or not number[-2:].isdigit():
        return None
    n = 0
    for c in number[1:-2]:
        if c not in _ALPHABET:
            return None
        n = n * 62 + _ALPHABET.index(c)
    if n >= 2**128:
        return None
    return UUID(int=n), int(number[-2:])


class Withdrawal(Aggregate):
    @staticmethod
    def create_id(owner: str, key: str) -> UUID:
        return from_key("withdrawal", f"{owner}:{key}")

    @event("Requested")
    def __init__(
        self,
        owner: str,
        key: str,
        book_id: UUID,
        account: str,
        amount_fen: int,
        fee_fen: int,
        channel: str,
        payee: dict[str, Any],
        day: str,
    ) -> None:
        self.owner = owner  # "member:<id>" or "station:<id>"
        self.key = key  # the client's Idempotency-Key
        self.book_id = book_id
        self.account = account
        self.amount_fen = amount_fen  # held; the fee comes out of it
        self.fee_fen = fee_fen
        self.channel = channel
        self.payee = payee
        self.day = day
        self.state = "requested"
        self.attempt = 1
        self.out_bill_no: str | None = None
        self.transfer_bill_no: str | None = None
        self.provider_state: str | None = None
        self.reason = ""

    def __deepcopy__(self, memo: dict[int, Any]) -> Withdrawal:
        clone = copying.clone(self)
        clone.payee = dict(self.payee)
        return clone

    @property
    def net_fen(self) -> int:
        return self.amount_fen - self.fee_fen

    @property
    def hold_id(self) -> str:
        return child(self.id, f"hold:{self.attempt}").hex

    def _require(self, *states: str) -> None:
        if self.state not in states:
            raise WithdrawalNotAllowed(f"the withdrawal is {self.state}", state=self.state)

    def is_current(self, number: str) -> bool:
        return self.out_bill_no == number

    # -- review -----------------------------------------------------------------------------

    def approve(self, by: str) -> str:
        self._require("requested")
        number = out_bill_no(self.id, self.attempt)
        self._approved(by=by, out_bill_no=number)
        return number

    def reject(self, by: str, reason: str) -> None:
        self._require("requested")
        self._rejected(by=by, reason=reason)

    def retry(self, by: str) -> str:
        """After FAIL or CANCELLED only: a new attempt, a new hold, a new out-bill number."""
        self._require("failed")
        number = out_bill_no(self.id, self.attempt + 1)
        self._retried(by=by, out_bill_no=number)
        return number

    # -- the payout -------------------------------------------------------------------------

    def payout_sent(self, transfer_bill_no: str | None, provider_state: str, package: str) -> bool:
        self._require("approved", "sent")
        if self.state == "sent" and self.provider_state == provider_state:
            return False
        self._payout_sent(
            transfer_bill_no=transfer_bill_no, provider_state=provider_state, package=package
        )
        return True

    def paid_out(self, transfer_bill_no: str | None, entry: JournalEntry) -> None:
        self._require("approved", "sent")
        self._paid_out(transfer_bill_no=transfer_bill_no, entry=entry)

    def payout_failed(self, provider_state: str, reason: str) -> None:
        self._require("approved", "sent")
        self._payout_failed(provider_state=provider_state, reason=reason)

    # -- events -----------------------------------------------------------------------------

    @event("Approved")
    def _approved(self, by: str, out_bill_no: str) -> None:
        self.state = "approved"
        self.out_bill_no = out_bill_no

    @event("Rejected")
    def _rejected(self, by: str, reason: str) -> None:
        self.state = "rejected"
        self.reason = reason

    @event("Retried")
    def _retried(self, by: str, out_bill_no: str) -> None:
        self.state = "approved"
        self.attempt += 1
        self.out_bill_no = out_bill_no
        self.transfer_bill_no = None
        self.provider_state = None
        self.reason = ""

    @event("PayoutSent")
    def _payout_sent(self, transfer_bill_no: str | None, provider_state: str, package: str) -> None:
        self.state = "sent"
        self.transfer_bill_no = transfer_bill_no
        self.provider_state = provider_state

    @event("PaidOut")
    def _paid_out(self, transfer_bill_no: str | None, entry: JournalEntry) -> None:
        self.state = "paid"
        self.provider_state = "SUCCESS"
        self.transfer_bill_no = transfer_bill_no or self.transfer_bill_no

    @event("PayoutFailed")
    def _payout_failed(self, provider_state: str, reason: str) -> None:
        self.state = "failed"
        self.provider_state = provider_state
        self.reason = reason


class WithdrawalDay(Aggregate):
    """What one owner asked to withdraw on one business day, for the daily limit."""

    @staticmethod
    def create_id(owner: str, day: str) -> UUID:
        return from_key("withdrawal-day", f"{owner}:{day}")

    @event("Opened")
    def __init__(self, owner: str, day: str) -> None:
        self.owner = owner
        self.day = day
        self.total_fen = 0

    def add(self, amount: int, limit: int) -> None:
        if self.total_fen + amount > limit:
            raise WithdrawalNotAllowed(
                "over the daily withdrawal limit",
                limit_fen=limit,
                used_fen=self.total_fen,
                amount_fen=amount,
            )
        self._added(amount=amount)

    def give_back(self, amount: int) -> None:
        self._given_back(amount=amount)

    @event("Added")
    def _added(self, amount: int) -> None:
        self.total_fen += amount

    @event("GivenBack")
    def _given_back(self, amount: int) -> None:
        self.total_fen -= amount

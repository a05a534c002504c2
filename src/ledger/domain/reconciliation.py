"""Provider statement reconciliation: one provider's trade bill for one business day, matched
line by line against what the ledger recorded, with the matched part settled.

A `Reconciliation` exists once per (provider, bill date): its `Imported` event records the
file, the outcome and every exception, and carries the settlement entry, so a bill is
settled exactly once. A different statement for a day already imported is refused (a
correction would be a new, reversing reconciliation, not an edit). A line the ledger
already settled with another day's statement is an exception, never settled twice.
Exceptions are closed by a person with a note; closing moves no money.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, astuple, dataclass
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger import accounts as acc
from ledger.errors import DomainError, NotFound
from ledger.ids import child, from_key
from ledger.journal import JournalEntry

PROVIDERS = ("wechat", "alipay")
LINE_KINDS = ("payment", "refund")
EXCEPTION_KINDS = (
    "missing_in_ledger",
    "missing_at_provider",
    "amount_differs",
    "refund_differs",
    "already_settled",  # another day's statement listed and settled it
)
FAILED_REFUND_STATES = ("CLOSED", "ABNORMAL")


class StatementInvalid(DomainError):
    """The file is not a statement of that provider, or does not add up."""

    code = "statement_invalid"


class StatementAlreadyImported(DomainError):
    code = "statement_already_imported"
    status = 409


class ExceptionAlreadyResolved(DomainError):
    code = "exception_already_resolved"
    status = 409


class UnknownReconciliationException(NotFound):
    pass


@dataclass(frozen=True)
class StatementLine:
    kind: str  # payment | refund
    ref: str  # payment: the provider's transaction id; refund: our out-refund number
    out_trade_no: str
    amount_fen: int  # positive
    fee_fen: int  # what the provider kept for this line; negative when a refund returns it
    at: str  # the provider's time, as the file writes it


@dataclass(frozen=True)
class Statement:
    provider: str
    lines: tuple[StatementLine, ...]
    file_sha256: str  # of the bytes, for the record

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise StatementInvalid(f"unknown provider {self.provider!r}")
        keys = [(line.kind, line.ref) for line in self.lines]
        if len(set(keys)) != len(keys):
            raise StatementInvalid("a transaction appears twice in the statement")
        if any(line.amount_fen <= 0 or not line.ref for line in self.lines):
            raise StatementInvalid("every line needs an id and a positive amount")

    @property
    def content_sha256(self) -> str:
        """What the statement says, not its bytes: a re-download stamped with another export
        time is the same statement."""
        canonical = sorted(astuple(line) for line in self.lines)
        text = json.dumps([self.provider, canonical], separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class LedgerMovement:
    """A payment or refund as the ledger knows it; `of_day` when the ledger dates it on the
    bill's day (so the provider should list it)."""

    kind: str
    ref: str
    out_trade_no: str
    amount_fen: int
    state: str  # payment: its outcome; refund: pending, SUCCESS, ABNORMAL or CLOSED
    of_day: bool
    settled_on: str | None = None  # the bill date of the statement that settled it


@dataclass(frozen=True)
class LedgerSnapshot:
    position: int  # the read model's log position the movements were read at
    movements: tuple[LedgerMovement, ...]


@dataclass(frozen=True)
class Discrepancy:
    kind: str
    line_kind: str
    ref: str
    out_trade_no: str
    provider_fen: int | None
    ledger_fen: int | None
    detail: str

    def record(self, reconciliation_id: UUID) -> dict[str, Any]:
        exception_id = child(reconciliation_id, f"{self.line_kind}:{self.ref}")
        return {"exception_id": str(exception_id), **asdict(self)}


@dataclass(frozen=True)
class Matching:
    matched: tuple[StatementLine, ...]
    discrepancies: tuple[Discrepancy, ...]

    def settled_refs(self) -> dict[str, list[str]]:
        """The ids this statement settles, by line kind: no later statement settles them."""
        return {kind: [x.ref for x in self.matched if x.kind == kind] for kind in LINE_KINDS}


def match_statement(statement: Statement, snapshot: LedgerSnapshot) -> Matching:
    """Each line against the ledger by (kind, id) and amount, then the day's ledger movements
    the statement does not list."""
    ledger = {(m.kind, m.ref): m for m in snapshot.movements}
    matched: list[StatementLine] = []
    found: list[Discrepancy] = []
    for line in statement.lines:
        known = ledger.get((line.kind, line.ref))
        problem = _compare(line, known)
        if problem is None:
            matched.append(line)
        else:
            found.append(problem)
    listed = {(line.kind, line.ref) for line in statement.lines}
    for m in snapshot.movements:
        if m.of_day and m.settled_on is None and (m.kind, m.ref) not in listed:
            found.append(
                Discrepancy(
                    "missing_at_provider", m.kind, m.ref, m.out_trade_no, None, m.amount_fen,
                    f"the ledger has this {m.kind} ({m.state}); the statement does not",
                )
            )  # fmt: skip
    return Matching(tuple(matched), tuple(found))


def _compare(line: StatementLine, known: LedgerMovement | None) -> Discrepancy | None:
    def differs(kind: str, detail: str) -> Discrepancy:
        ledger_fen = known.amount_fen if known else None
        return Discrepancy(
            kind, line.kind, line.ref, line.out_trade_no, line.amount_fen, ledger_fen, detail
        )

    if known is None:
        return differs("missing_in_ledger", f"the ledger has no {line.kind} with this id")
    if known.settled_on is not None:
        return differs("already_settled", f"settled with the statement of {known.settled_on}")
    kind = "amount_differs" if line.kind == "payment" else "refund_differs"
    if known.amount_fen != line.amount_fen:
        return differs(kind, f"provider {line.amount_fen} fen, ledger {known.amount_fen} fen")
    if line.kind == "refund" and known.state in FAILED_REFUND_STATES:
        return differs(kind, f"the provider refunded; the ledger has the refund {known.state}")
    return None


def outcome_totals(statement: Statement, matching: Matching) -> dict[str, Any]:
    def total(lines: tuple[StatementLine, ...], kind: str, field: str = "amount_fen") -> int:
        return sum(getattr(line, field) for line in lines if line.kind == kind)

    lines, matched = statement.lines, matching.matched
    settled_gross = total(matched, "payment") - total(matched, "refund")
    fee = sum(line.fee_fen for line in matched)
    by_kind = dict.fromkeys(EXCEPTION_KINDS, 0)
    for d in matching.discrepancies:
        by_kind[d.kind] += 1
    return {
        "lines": len(lines),
        "payments": sum(1 for line in lines if line.kind == "payment"),
        "refunds": sum(1 for line in lines if line.kind == "refund"),
        "payments_fen": total(lines, "payment"),
        "refunds_fen": total(lines, "refund"),
        "fee_fen": sum(line.fee_fen for line in lines),
        "matched": len(matched),
        "matched_payments_fen": total(matched, "payment"),
        "matched_refunds_fen": total(matched, "refund"),
        "matched_fee_fen": fee,
        "settled_gross_fen": settled_gross,
        "settled_net_fen": settled_gross - fee,
        "exceptions": len(matching.discrepancies),
        "exceptions_by_kind": by_kind,
    }


def settlement_entry(
    reconciliation_id: UUID, provider: str, bill_date: str, totals: dict[str, Any]
) -> JournalEntry | None:
    """The matched money leaves the provider for the bank, less the provider's fee.

    `provider:*` holds, negated, what the provider keeps for us (DESIGN.md section 2): taking
    the settled gross out of it moves it up, toward zero. The bank account is negated the
    same way (payouts by bank move it up), so what arrives there moves it down; the fee is
    an expense and goes negative like marketing."""
    gross, fee = totals["settled_gross_fen"], totals["matched_fee_fen"]
    if gross == 0 and fee == 0:
        return None
    return JournalEntry.of(
        child(reconciliation_id, "settlement"),
        "provider_settlement",
        [
            (acc.provider(provider), acc.CNY, gross),
            (acc.BANK, acc.CNY, -(gross - fee)),
            (acc.PROVIDER_FEES, acc.CNY, -fee),
        ],
        provider=provider,
        bill_date=bill_date,
        reconciliation_id=str(reconciliation_id),
    )


class Reconciliation(Aggregate):
    @staticmethod
    def create_id(provider: str, bill_date: str) -> UUID:
        return from_key("reconciliation", f"{provider}:{bill_date}")

    @event("Imported")
    def __init__(
        self,
        provider: str,
        bill_date: str,
        content_sha256: str,
        file_sha256: str,
        source: str,
        imported_by: str,
        ledger_position: int,
        totals: dict[str, Any],
        exceptions: list[dict[str, Any]],
        settled: dict[str, list[str]],
        entry: JournalEntry | None,
    ) -> None:
        self.provider = provider
        self.bill_date = bill_date
        self.content_sha256 = content_sha256
        self.file_sha256 = file_sha256
        self.source = source
        self.imported_by = imported_by
        self.ledger_position = ledger_position
        self.totals = totals
        self.settlement_entry_id = entry.id if entry else None
        self.exceptions = {e["exception_id"]: {**e, "state": "open"} for e in exceptions}

    def resolve(self, exception_id: str, note: str, resolved_by: str) -> None:
        found = self.exceptions.get(exception_id)
        if found is None:
            raise UnknownReconciliationException(f"no exception {exception_id} in this run")
        if found["state"] == "resolved":
            raise ExceptionAlreadyResolved(
                "this exception is resolved", resolved_by=found["resolved_by"]
            )
        self._resolved(exception_id=exception_id, note=note, resolved_by=resolved_by)

    @event("ExceptionResolved")
    def _resolved(self, exception_id: str, note: str, resolved_by: str) -> None:
        resolved = {"state": "resolved", "note": note, "resolved_by": resolved_by}
        self.exceptions[exception_id] = {**self.exceptions[exception_id], **resolved}

"""Importing a provider's trade bill: read it, match it against the ledger, record the outcome
and settle the matched part, once per (provider, bill date); closing exceptions.

The statement reader (provider file formats) and the ledger view (the read model of provider
payments and refunds) are handed in by the composition root: this module knows neither CSV
nor SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.commands import CommandRunner, UnitOfWork, fingerprint
from ledger.domain.reconciliation import (
    PROVIDERS,
    LedgerSnapshot,
    Reconciliation,
    Statement,
    StatementAlreadyImported,
    StatementInvalid,
    match_statement,
    outcome_totals,
    settlement_entry,
)
from ledger.errors import NotFound
from ledger.ids import from_key

StatementReader = Callable[[str, date, bytes], Statement]


class LedgerView(Protocol):
    def snapshot(self, provider: str, day: date, statement: Statement) -> LedgerSnapshot:
        """The day's provider payments and refunds, and any other the statement names."""
        ...


def reconciliation_view(r: Reconciliation) -> dict[str, Any]:
    return {
        "reconciliation_id": str(r.id),
        "provider": r.provider,
        "bill_date": r.bill_date,
        "content_sha256": r.content_sha256,
        "file_sha256": r.file_sha256,
        "source": r.source,
        "imported_by": r.imported_by,
        "ledger_position": r.ledger_position,
        "totals": r.totals,
        "settlement_entry_id": str(r.settlement_entry_id) if r.settlement_entry_id else None,
        "exceptions": list(r.exceptions.values()),
    }


class ReconciliationService:
    def __init__(
        self, runner: CommandRunner, ledger: LedgerView, read_statement: StatementReader
    ) -> None:
        self.runner = runner
        self.ledger = ledger
        self.read_statement = read_statement

    def import_statement(
        self, *, provider: str, bill_date: date, content: bytes, source: str, imported_by: str
    ) -> dict[str, Any]:
        """Import once: the same statement again answers the first import's result; another
        statement for that day is refused (StatementAlreadyImported)."""
        if provider not in PROVIDERS:
            raise StatementInvalid(f"unknown provider {provider!r}", provider=provider)
        statement = self.read_statement(provider, bill_date, content)
        day = bill_date.isoformat()
        reconciliation_id = Reconciliation.create_id(provider, day)
        sha = statement.content_sha256
        snapshot = self.ledger.snapshot(provider, bill_date, statement)
        matching = match_statement(statement, snapshot)

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            found = uow.find(Reconciliation, reconciliation_id)
            if found is not None:
                if found.content_sha256 != sha:
                    raise StatementAlreadyImported(
                        f"the {provider} statement for {day} is already imported",
                        reconciliation_id=str(found.id),
                        content_sha256=found.content_sha256,
                    )
                return reconciliation_view(found)
            totals = outcome_totals(statement, matching)
            reconciliation = uow.add(
                Reconciliation(
                    provider=provider,
                    bill_date=day,
                    content_sha256=sha,
                    file_sha256=statement.file_sha256,
                    source=source,
                    imported_by=imported_by,
                    ledger_position=snapshot.position,
                    totals=totals,
                    exceptions=[d.record(reconciliation_id) for d in matching.discrepancies],
                    settled=matching.settled_refs(),
                    entry=settlement_entry(reconciliation_id, provider, day, totals),
                )
            )
            return reconciliation_view(reconciliation)

        command_id = from_key("reconcile", f"{provider}:{day}:{sha}")
        return self.runner.run(command_id, ["reconcile", provider, day, sha], decide)

    def resolve(
        self, *, reconciliation_id: UUID, exception_id: UUID, note: str, resolved_by: str
    ) -> dict[str, Any]:
        """Close an exception with a note. The same request again answers the same; another
        note for a closed exception is refused (ExceptionAlreadyResolved)."""

        def decide(uow: UnitOfWork) -> dict[str, Any]:
            reconciliation = uow.find(Reconciliation, reconciliation_id)
            if reconciliation is None:
                raise NotFound(f"no reconciliation {reconciliation_id}")
            reconciliation.resolve(str(exception_id), note, resolved_by)
            return {
                "reconciliation_id": str(reconciliation_id),
                **reconciliation.exceptions[str(exception_id)],
            }

        request = fingerprint([note, resolved_by])
        command_id = from_key("resolve-reconciliation-exception", f"{exception_id}:{request}")
        return self.runner.run(command_id, ["resolve", str(exception_id), note], decide)

    def imported(self, provider: str, bill_date: date) -> bool:
        try:
            self._load(Reconciliation.create_id(provider, bill_date.isoformat()))
        except NotFound:
            return False
        return True

    def _load(self, reconciliation_id: UUID) -> Reconciliation:
        found: Any
        try:
            found = self.runner.app.repository.get(reconciliation_id)
        except AggregateNotFoundError:
            found = None
        if not isinstance(found, Reconciliation):
            raise NotFound(f"no reconciliation {reconciliation_id}")
        return found

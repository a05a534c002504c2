"""The reconciliation projection for the bulk phase of a rebuild: the same rows as
ReconciliationProjector.apply, from raw events (see projections.raw). Provider movements
(a payment or a refund each, and the provider's answers to refunds) are folded in memory and
written once per checkpoint; the rare reconciliation runs go through the live handlers,
decoded into domain events, in log order, after what is folded so far is written."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from psycopg import Cursor

from projections.framework import Envelope
from projections.raw import RawEvent, insert_rows, staged, when
from projections.reconciliation import ReconciliationProjector
from projections.station_figures import business_day

MOVEMENT_COLUMNS = (
    "movement_id",
    "provider",
    "kind",
    "ref",
    "out_trade_no",
    "amount_fen",
    "state",
    "day",
    "position",
)
ANSWER_COLUMNS = ("movement_id", "state", "day", "position")


def _day(value: dict[str, Any]) -> Any:
    """A transcoded datetime's business day, as the live projector computes it."""
    return business_day(when(value))


class ReconciliationFold:
    appends_only: tuple[str, ...] = ()
    cost = 6.0  # see bulk.cost_of

    def __init__(
        self, projector: ReconciliationProjector, app: Application[UUID], complete: bool
    ) -> None:
        self.projector, self.app = projector, app
        # Rows not written yet, by movement id, in log order; answers to rows written before
        # (the last answer to a movement is the one that stays, as with an UPDATE each).
        self.rows: dict[str, list[Any]] = {}
        self.answers: dict[str, tuple[Any, ...]] = {}
        self.handlers: dict[str, bool] = {}

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        rows, answers = self.rows, self.answers
        for event in events:
            kind, d = event.kind, event.data
            if kind == "ProviderPayment.Received":
                self._insert(
                    cur,
                    [
                        event.originator, d["provider"], "payment", d["transaction_id"],
                        d["out_trade_no"], d["amount_fen"], d["outcome"], _day(d["paid_at"]),
                        event.position,
                    ],
                )  # fmt: skip
            elif kind == "Refund.Requested":
                if d["provider"] and d["provider_fen"] > 0:  # else nothing went to a provider
                    self._insert(
                        cur,
                        [
                            event.originator, d["provider"], "refund", d["out_refund_no"],
                            d["out_trade_no"], d["provider_fen"], "pending", None,
                            event.position,
                        ],
                    )  # fmt: skip
            elif kind == "Refund.ProviderAnswered":
                state = d["state"]
                day = _day(d["timestamp"]) if state == "SUCCESS" else None
                row = rows.get(event.originator)
                if row is None:
                    answers[event.originator] = (event.originator, state, day, event.position)
                else:
                    row[6], row[7], row[8] = state, day, event.position
            elif self._handled(kind):
                self.flush(cur)
                stored = StoredEvent(
                    UUID(event.originator), event.version, event.topic, event.state
                )
                domain_event = self.app.mapper.to_domain_event(stored)
                self.projector.apply(cur, [Envelope(event.position, domain_event)])

    def _handled(self, kind: str) -> bool:
        """Whether the live projector has a handler for events of this kind."""
        handled = self.handlers.get(kind)
        if handled is None:
            handler = getattr(self.projector, "_" + kind.replace(".", "_"), None)
            handled = self.handlers[kind] = handler is not None
        return handled

    def _insert(self, cur: Cursor[Any], row: list[Any]) -> None:
        if row[0] in self.answers:  # never so (a movement is answered after it is made)
            self.flush(cur)  # but the answer would not be the row's if it were
        self.rows.setdefault(row[0], row)

    def flush(self, cur: Cursor[Any]) -> None:
        rows, answers = self.rows, self.answers  # emptied in place: feed holds them
        if rows:
            insert_rows(cur, "provider_movements", MOVEMENT_COLUMNS, rows.values())
            rows.clear()
        if answers:
            stage = staged(cur, "provider_movements", ANSWER_COLUMNS, answers.values())
            cur.execute(
                f"UPDATE provider_movements m SET state = a.state, day = a.day, "
                f"position = a.position FROM {stage} a WHERE m.movement_id = a.movement_id"
            )
            answers.clear()

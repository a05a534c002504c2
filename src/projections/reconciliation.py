"""Provider statement reconciliation, read side: the ledger's provider payments and refunds by
business day (what a statement is matched against), reconciliation runs and their
exceptions (open or resolved)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor
from psycopg.types.json import Jsonb

from projections.framework import Envelope, Projector
from projections.station_figures import business_day

PAYMENT = "ledger.domain.provider_payment:ProviderPayment."
REFUND = "ledger.domain.refund:Refund."
RECONCILIATION = "ledger.domain.reconciliation:Reconciliation."


INSERT_MOVEMENT = (
    "INSERT INTO provider_movements (movement_id, provider, kind, ref, out_trade_no, "
    "amount_fen, state, day, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)
ANSWER_MOVEMENT = (
    "UPDATE provider_movements SET state = %s, day = %s, position = %s WHERE movement_id = %s"
)


def _payment_row(e: Any, pos: int) -> tuple[Any, ...]:
    return (
        e.originator_id, e.provider, "payment", e.transaction_id, e.out_trade_no, e.amount_fen,
        e.outcome, business_day(e.paid_at), pos,
    )  # fmt: skip


def _refund_row(e: Any, pos: int) -> tuple[Any, ...] | None:
    if not e.provider or e.provider_fen <= 0:
        return None  # nothing went back through a provider
    return (
        e.originator_id, e.provider, "refund", e.out_refund_no, e.out_trade_no, e.provider_fen,
        "pending", None, pos,
    )  # fmt: skip


def _answer(e: Any, pos: int) -> tuple[Any, ...]:
    day = business_day(e.timestamp) if e.state == "SUCCESS" else None
    return (e.state, day, pos, e.originator_id)


class _Movements:
    """Movement rows not written yet, in log order, and answers to rows already written."""

    def __init__(self) -> None:
        self.rows: dict[Any, tuple[Any, ...]] = {}
        self.answers: list[tuple[Any, ...]] = []

    def insert(self, row: tuple[Any, ...]) -> None:
        self.rows.setdefault(row[0], row)  # like ON CONFLICT DO NOTHING

    def answer(self, state: str, day: Any, pos: int, movement_id: Any) -> None:
        row = self.rows.get(movement_id)
        if row is None:
            self.answers.append((state, day, pos, movement_id))
        else:
            self.rows[movement_id] = (*row[:6], state, day, pos)

    def write(self, cur: Cursor[Any]) -> None:
        if self.rows:
            cur.executemany(INSERT_MOVEMENT, list(self.rows.values()))
        if self.answers:
            cur.executemany(ANSWER_MOVEMENT, self.answers)
        self.rows, self.answers = {}, []


class ReconciliationProjector(Projector):
    name = "reconciliation"
    topic_prefixes = (PAYMENT, REFUND, RECONCILIATION)
    schema_aware = True

    def tables(self) -> Sequence[str]:
        return ("read.provider_movements", "read.reconciliations", "read.reconciliation_exceptions")

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            e = env.event
            handler = getattr(self, "_" + type(e).__qualname__.replace(".", "_"), None)
            if handler is not None:
                handler(cur, e, env.position)

    def apply_bulk(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        """A rebuild's page: movement rows gathered in memory and written with one
        statement each kind (a refund answered in the same page is updated before it is
        written); the rare reconciliation events go through `apply` in their place."""
        batch = _Movements()
        for env in envelopes:
            e, kind = env.event, type(env.event).__qualname__
            if kind == "ProviderPayment.Received":
                batch.insert(_payment_row(e, env.position))
            elif kind == "Refund.Requested":
                if (row := _refund_row(e, env.position)) is not None:
                    batch.insert(row)
            elif kind == "Refund.ProviderAnswered":
                batch.answer(*_answer(e, env.position))
            else:
                batch.write(cur)
                self.apply(cur, [env])
        batch.write(cur)

    # -- what the ledger knows --------------------------------------------------------------

    def _ProviderPayment_Received(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(INSERT_MOVEMENT, _payment_row(e, pos))

    def _Refund_Requested(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        if (row := _refund_row(e, pos)) is not None:
            cur.execute(INSERT_MOVEMENT, row)

    def _Refund_ProviderAnswered(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(ANSWER_MOVEMENT, _answer(e, pos))

    # -- runs and exceptions ----------------------------------------------------------------

    def _Reconciliation_Imported(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        t = e.totals
        cur.execute(
            "INSERT INTO reconciliations (reconciliation_id, provider, bill_date, content_sha256, "
            "file_sha256, source, imported_by, ledger_position, lines, matched, exceptions, "
            "open_exceptions, settled_gross_fen, settled_net_fen, fee_fen, totals, "
            "settlement_entry_id, imported_at, updated_at, position) VALUES (%s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.provider,
                e.bill_date,
                e.content_sha256,
                e.file_sha256,
                e.source,
                e.imported_by,
                e.ledger_position,
                t["lines"],
                t["matched"],
                t["exceptions"],
                t["exceptions"],
                t["settled_gross_fen"],
                t["settled_net_fen"],
                t["matched_fee_fen"],
                Jsonb(t),
                e.entry.id if e.entry is not None else None,
                e.timestamp,
                e.timestamp,
                pos,
            ),
        )
        for kind, refs in e.settled.items():
            cur.execute(
                "UPDATE provider_movements SET settled_by = %s, settled_on = %s "
                "WHERE provider = %s AND kind = %s AND ref = ANY(%s)",
                (e.originator_id, e.bill_date, e.provider, kind, refs),
            )
        if not e.exceptions:
            return
        cur.executemany(
            "INSERT INTO reconciliation_exceptions (exception_id, reconciliation_id, provider, "
            "bill_date, kind, line_kind, ref, out_trade_no, provider_fen, ledger_fen, detail, "
            "state, created_at, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "'open', %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    x["exception_id"],
                    e.originator_id,
                    e.provider,
                    e.bill_date,
                    x["kind"],
                    x["line_kind"],
                    x["ref"],
                    x["out_trade_no"],
                    x["provider_fen"],
                    x["ledger_fen"],
                    x["detail"],
                    e.timestamp,
                    pos,
                )
                for x in e.exceptions
            ],
        )

    def _Reconciliation_ExceptionResolved(self, cur: Cursor[Any], e: Any, pos: int) -> None:
        cur.execute(
            "UPDATE reconciliation_exceptions SET state = 'resolved', note = %s, "
            "resolved_by = %s, resolved_at = %s, position = %s "
            "WHERE exception_id = %s AND state = 'open'",
            (e.note, e.resolved_by, e.timestamp, pos, e.exception_id),
        )
        if cur.rowcount:
            cur.execute(
                "UPDATE reconciliations SET open_exceptions = open_exceptions - 1, "
                "updated_at = %s, position = %s WHERE reconciliation_id = %s",
                (e.timestamp, pos, e.originator_id),
            )

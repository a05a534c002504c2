"""The orders projection for large pages (a rebuild): the same rows as OrdersProjector.apply,
folded in memory and written with one COPY per table instead of a statement per event.

Rows touched by the page are read once, changed in memory by the events in log order, then
written back: new rows by COPY, changed rows by DELETE and COPY. An event kind this module
does not fold goes through the live handler, after what is folded so far is written, so a
handler added to OrdersProjector is never skipped, only slower. The property tests compare
this path with the live one after random command sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg import Cursor

from projections.framework import Envelope
from projections.orders import OrdersProjector


class TableFold:
    """Rows of one table by key, as the page leaves them."""

    def __init__(self, table: str, key: str) -> None:
        self.table, self.key = table, key
        self.rows: dict[Any, dict[str, Any]] = {}
        self.stored: set[Any] = set()  # keys whose row came from the table
        self.dirty: set[Any] = set()

    def load(self, cur: Cursor[Any], keys: set[Any]) -> None:
        keys = {k for k in keys if k not in self.rows}
        if not keys:
            return
        cur.execute(f"SELECT * FROM {self.table} WHERE {self.key} = ANY(%s)", (list(keys),))
        assert cur.description is not None
        names = [c.name for c in cur.description]
        for values in cur.fetchall():
            row = dict(zip(names, values, strict=True))
            self.rows[row[self.key]] = row
            self.stored.add(row[self.key])

    def insert(self, row: dict[str, Any]) -> None:
        """INSERT ... ON CONFLICT DO NOTHING."""
        key = row[self.key]
        if key not in self.rows:
            self.rows[key] = row
            self.dirty.add(key)

    def update(self, key: Any, change: Callable[[dict[str, Any]], None]) -> None:
        """UPDATE ... WHERE key = %s: nothing when there is no such row."""
        row = self.rows.get(key)
        if row is not None:
            change(row)
            self.dirty.add(key)

    def flush(self, cur: Cursor[Any]) -> None:
        if not self.dirty:
            return
        replaced = [k for k in self.dirty if k in self.stored]
        if replaced:
            cur.execute(f"DELETE FROM {self.table} WHERE {self.key} = ANY(%s)", (replaced,))
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for key in self.dirty:
            row = self.rows[key]
            by_columns.setdefault(tuple(row), []).append(row)
        for columns, rows in by_columns.items():
            with cur.copy(f"COPY {self.table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        self.stored.update(self.dirty)
        self.dirty.clear()


def _touch(row: dict[str, Any], e: Any, pos: int, **changes: Any) -> None:
    row.update(changes)
    row["updated_at"], row["position"] = e.timestamp, pos


class FoldedOrdersProjector(OrdersProjector):
    def apply_bulk(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        folds = {
            "orders": TableFold("fuel_orders", "order_id"),
            "top_ups": TableFold("top_ups", "top_up_id"),
            "refunds": TableFold("refunds", "refund_id"),
            "exceptions": TableFold("payment_exceptions", "payment_id"),
        }
        self._load(cur, folds, envelopes)
        for env in envelopes:
            e = env.event
            name = type(e).__qualname__.replace(".", "_")
            fold = getattr(self, "_fold_" + name, None)
            if fold is not None:
                fold(folds, e, env.position)
            elif getattr(self, "_" + name, None) is not None:
                for table in folds.values():
                    table.flush(cur)
                getattr(self, "_" + name)(cur, e, env.position)
                for table in folds.values():  # the handler may have changed loaded rows
                    table.rows.clear()
                    table.stored.clear()
                self._load(cur, folds, envelopes)
        for table in folds.values():
            table.flush(cur)

    @staticmethod
    def _load(cur: Cursor[Any], folds: dict[str, TableFold], envelopes: Sequence[Envelope]) -> None:
        wanted: dict[str, set[Any]] = {name: set() for name in folds}
        for env in envelopes:
            e = env.event
            kind = type(e).__qualname__
            if kind.startswith("FuelOrder."):
                wanted["orders"].add(e.originator_id)
            elif kind.startswith("TopUp."):
                wanted["top_ups"].add(e.originator_id)
            elif kind.startswith("Refund."):
                wanted["refunds"].add(e.originator_id)
                if kind == "Refund.Requested" and e.payment_id is not None:
                    wanted["exceptions"].add(e.payment_id)
            elif kind == "ProviderPayment.Received":
                wanted["exceptions"].add(e.originator_id)
        for name, keys in wanted.items():
            folds[name].load(cur, keys)

    # -- fuel orders ----------------------------------------------------------------------

    def _fold_FuelOrder_Created(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["orders"].insert(
            {
                "order_id": e.originator_id,
                "out_trade_no": e.originator_id.hex,
                "member_id": e.member_id,
                "station_id": e.station_id,
                "grade": e.grade,
                "nozzle": e.nozzle,
                "amount_fen": e.amount_fen,
                "price_fen_per_litre": e.price_fen_per_litre,
                "volume_ml": e.volume_ml,
                "coupon_id": e.coupon_id,
                "coupon_fen": e.coupon_fen,
                "points_used": e.points_used,
                "points_fen": e.points_fen,
                "payable_fen": e.payable_fen,
                "points_earned": 0,
                "status": "created",
                "method": None,
                "provider_fen": 0,
                "card_fen": 0,
                "refunded_fen": 0,
                "confirmed": False,
                "provider_transaction": None,
                "created_at": e.timestamp,
                "expires_at": e.expires_at,
                "paid_at": None,
                "updated_at": e.timestamp,
                "position": pos,
            }
        )

    def _fold_FuelOrder_PaymentStarted(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["orders"].update(
            e.originator_id, lambda r: _touch(r, e, pos, status="paying", method=e.method)
        )

    def _fold_FuelOrder_Paid(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        card = e.sources.get("card", 0) + e.sources.get("card_bonus", 0)
        folds["orders"].update(
            e.originator_id,
            lambda r: _touch(
                r,
                e,
                pos,
                status="paid",
                method=e.method,
                provider_fen=e.sources.get("provider", 0),
                card_fen=card,
                provider_transaction=e.provider_transaction,
                paid_at=e.paid_at,
            ),
        )

    def _fold_FuelOrder_PointsEarned(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["orders"].update(
            e.originator_id,
            lambda r: _touch(r, e, pos, points_earned=r["points_earned"] + e.points),
        )

    def _fold_FuelOrder_Expired(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["orders"].update(e.originator_id, lambda r: _touch(r, e, pos, status="expired"))

    def _fold_FuelOrder_Confirmed(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["orders"].update(e.originator_id, lambda r: _touch(r, e, pos, confirmed=True))

    def _fold_FuelOrder_Refunded(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        amount = sum(e.parts.values())

        def change(r: dict[str, Any]) -> None:
            total = r["refunded_fen"] + amount
            status = "refunded" if total >= r["amount_fen"] else "partially_refunded"
            _touch(r, e, pos, refunded_fen=total, status=status)

        folds["orders"].update(e.originator_id, change)

    # -- top-ups --------------------------------------------------------------------------

    def _fold_TopUp_Created(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["top_ups"].insert(
            {
                "top_up_id": e.originator_id,
                "out_trade_no": e.originator_id.hex,
                "member_id": e.member_id,
                "method": e.method,
                "amount_fen": e.amount_fen,
                "bonus_fen": e.bonus_fen,
                "status": "created",
                "provider_transaction": None,
                "created_at": e.timestamp,
                "expires_at": e.expires_at,
                "paid_at": None,
                "position": pos,
            }
        )

    def _fold_TopUp_Paid(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["top_ups"].update(
            e.originator_id,
            lambda r: r.update(
                status="paid",
                provider_transaction=e.transaction_id,
                paid_at=e.paid_at,
                position=pos,
            ),
        )

    def _fold_TopUp_Expired(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["top_ups"].update(e.originator_id, lambda r: r.update(status="expired", position=pos))

    # -- refunds and exceptions -----------------------------------------------------------

    def _fold_Refund_Requested(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["refunds"].insert(
            {
                "refund_id": e.originator_id,
                "out_refund_no": e.out_refund_no,
                "order_id": e.order_id,
                "payment_id": e.payment_id,
                "provider": e.provider,
                "provider_fen": e.provider_fen,
                "provider_total_fen": e.provider_total_fen,
                "out_trade_no": e.out_trade_no,
                "amount_fen": e.amount_fen,
                "reason": e.reason,
                "requested_by": e.requested_by,
                "provider_state": "pending" if e.provider_fen > 0 else "none",
                "requested_at": e.timestamp,
                "answered_at": None,
                "position": pos,
            }
        )
        if e.payment_id is not None:
            folds["exceptions"].update(e.payment_id, lambda r: r.update(refund_state="requested"))

    def _fold_Refund_ProviderAnswered(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        folds["refunds"].update(
            e.originator_id,
            lambda r: r.update(provider_state=e.state, answered_at=e.timestamp, position=pos),
        )

    def _fold_ProviderPayment_Received(self, folds: dict[str, TableFold], e: Any, pos: int) -> None:
        if e.outcome == "applied":
            return
        folds["exceptions"].insert(
            {
                "payment_id": e.originator_id,
                "provider": e.provider,
                "transaction_id": e.transaction_id,
                "out_trade_no": e.out_trade_no,
                "order_id": e.order_id,
                "amount_fen": e.amount_fen,
                "outcome": e.outcome,
                "reason": e.reason,
                "refund_state": None,
                "received_at": e.timestamp,
                "position": pos,
            }
        )

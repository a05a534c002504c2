"""The orders projection for the bulk phase of a rebuild: the same rows as
OrdersProjector.apply, folded in memory from raw events (see projections.raw) and written
with one COPY per table and checkpoint instead of a statement per event.

An event kind this module does not fold goes through the live handler (decoded into its
domain event), after what is folded so far is written, so a handler added to
OrdersProjector is never skipped, only slower. The property tests compare this path with
the live one after random command sequences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from psycopg import Cursor

from projections.orders import OrdersProjector
from projections.raw import KeyedRows, RawEvent, ts, uid

ORDER_COLUMNS = (
    "order_id",
    "out_trade_no",
    "member_id",
    "station_id",
    "grade",
    "nozzle",
    "amount_fen",
    "price_fen_per_litre",
    "volume_ml",
    "coupon_id",
    "coupon_fen",
    "points_used",
    "points_fen",
    "payable_fen",
    "points_earned",
    "status",
    "method",
    "provider_fen",
    "card_fen",
    "refunded_fen",
    "confirmed",
    "provider_transaction",
    "created_at",
    "expires_at",
    "paid_at",
    "updated_at",
    "position",
)
TOP_UP_COLUMNS = (
    "top_up_id",
    "out_trade_no",
    "member_id",
    "method",
    "amount_fen",
    "bonus_fen",
    "status",
    "provider_transaction",
    "created_at",
    "expires_at",
    "paid_at",
    "position",
)
REFUND_COLUMNS = (
    "refund_id",
    "out_refund_no",
    "order_id",
    "payment_id",
    "provider",
    "provider_fen",
    "provider_total_fen",
    "out_trade_no",
    "amount_fen",
    "reason",
    "requested_by",
    "provider_state",
    "requested_at",
    "answered_at",
    "position",
)
EXCEPTION_COLUMNS = (
    "payment_id",
    "provider",
    "transaction_id",
    "out_trade_no",
    "order_id",
    "amount_fen",
    "outcome",
    "reason",
    "refund_state",
    "received_at",
    "position",
)
Tables = dict[str, KeyedRows]
# Whose rows an aggregate's events change: by the aggregate's class name.
_TABLE_OF = {
    "FuelOrder": "orders",
    "TopUp": "top_ups",
    "Refund": "refunds",
    "ProviderPayment": "exceptions",
}


class FoldedOrdersProjector(OrdersProjector):
    """The orders projector; a rebuild folds its events with OrdersFold (projections.bulk)."""


def _touch(row: dict[str, Any], d: dict[str, Any], pos: int, **changes: Any) -> None:
    row.update(changes)
    row["updated_at"], row["position"] = d["timestamp"]["_data_"], pos


class OrdersFold:
    # Written only by this fold's COPY in the bulk phase (every kind the live projector
    # handles has a _fold_ method), so their keys are added after it: about 1 s less on 1M
    # events than keeping four random-uuid keys up to date through the COPY. A kind that went
    # through a live handler here would fail loudly (its ON CONFLICT needs the key).
    appends_only: tuple[str, ...] = ("fuel_orders", "top_ups", "refunds", "payment_exceptions")
    cost = 9.0  # see bulk.cost_of

    def __init__(self, projector: OrdersProjector, app: Application[UUID], complete: bool) -> None:
        self.projector, self.app = projector, app
        self.tables: Tables = {
            "orders": KeyedRows("fuel_orders", "order_id", ORDER_COLUMNS, complete=complete),
            "top_ups": KeyedRows("top_ups", "top_up_id", TOP_UP_COLUMNS, complete=complete),
            "refunds": KeyedRows("refunds", "refund_id", REFUND_COLUMNS, complete=complete),
            "exceptions": KeyedRows(
                "payment_exceptions", "payment_id", EXCEPTION_COLUMNS, complete=complete
            ),
        }
        self.routes: dict[str, tuple[Callable[[RawEvent], None] | None, str | None]] = {}

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        self._prefetch(cur, events)
        for i, event in enumerate(events):
            fold, live = self._route(event.kind)
            if fold is not None:
                fold(event)
            elif live is not None:
                self._through_live_handler(cur, live, event)
                self._prefetch(cur, events[i + 1 :])

    def _route(self, kind: str) -> tuple[Callable[[RawEvent], None] | None, str | None]:
        """This fold's method for events of a kind, else the live handler's name, else none
        (asked once per kind)."""
        route = self.routes.get(kind)
        if route is None:
            name = kind.replace(".", "_")
            live = "_" + name if getattr(self.projector, "_" + name, None) is not None else None
            route = self.routes[kind] = (getattr(self, "_fold_" + name, None), live)
        return route

    def _through_live_handler(self, cur: Cursor[Any], handler: str, event: RawEvent) -> None:
        self.flush(cur)
        stored = StoredEvent(UUID(event.originator), event.version, event.topic, event.state)
        getattr(self.projector, handler)(
            cur, self.app.mapper.to_domain_event(stored), event.position
        )
        for table in self.tables.values():  # the handler may have changed any row
            table.forget()

    def flush(self, cur: Cursor[Any]) -> None:
        for table in self.tables.values():
            table.flush(cur)

    def _prefetch(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        """Read once the rows these events change that the tables hold already."""
        wanted: dict[str, set[str]] = {name: set() for name in self.tables}
        for event in events:
            kind = event.kind
            table = _TABLE_OF.get(kind.partition(".")[0])
            if table is not None:
                wanted[table].add(event.originator)
            if kind == "Refund.Requested":
                payment = uid(event.data["payment_id"])
                if payment is not None:
                    wanted["exceptions"].add(payment)
        for name, keys in wanted.items():
            self.tables[name].prefetch(cur, keys)

    # -- fuel orders ----------------------------------------------------------------------

    def _fold_FuelOrder_Created(self, event: RawEvent) -> None:
        d, at = event.data, ts(event.data["timestamp"])
        self.tables["orders"].insert(
            {
                "order_id": event.originator,
                "out_trade_no": event.originator,
                "member_id": uid(d["member_id"]),
                "station_id": uid(d["station_id"]),
                "grade": d["grade"],
                "nozzle": d["nozzle"],
                "amount_fen": d["amount_fen"],
                "price_fen_per_litre": d["price_fen_per_litre"],
                "volume_ml": d["volume_ml"],
                "coupon_id": d["coupon_id"],
                "coupon_fen": d["coupon_fen"],
                "points_used": d["points_used"],
                "points_fen": d["points_fen"],
                "payable_fen": d["payable_fen"],
                "points_earned": 0,
                "status": "created",
                "method": None,
                "provider_fen": 0,
                "card_fen": 0,
                "refunded_fen": 0,
                "confirmed": False,
                "provider_transaction": None,
                "created_at": at,
                "expires_at": ts(d["expires_at"]),
                "paid_at": None,
                "updated_at": at,
                "position": event.position,
            }
        )

    def _order(self, event: RawEvent, change: Callable[[dict[str, Any]], None]) -> None:
        self.tables["orders"].update(event.originator, change)

    def _fold_FuelOrder_PaymentStarted(self, event: RawEvent) -> None:
        d, pos = event.data, event.position
        self._order(event, lambda r: _touch(r, d, pos, status="paying", method=d["method"]))

    def _fold_FuelOrder_Paid(self, event: RawEvent) -> None:
        d, pos = event.data, event.position
        sources = d["sources"]
        self._order(
            event,
            lambda r: _touch(
                r,
                d,
                pos,
                status="paid",
                method=d["method"],
                provider_fen=sources.get("provider", 0),
                card_fen=sources.get("card", 0) + sources.get("card_bonus", 0),
                provider_transaction=d["provider_transaction"],
                paid_at=ts(d["paid_at"]),
            ),
        )

    def _fold_FuelOrder_PointsEarned(self, event: RawEvent) -> None:
        d, pos = event.data, event.position
        self._order(
            event, lambda r: _touch(r, d, pos, points_earned=r["points_earned"] + d["points"])
        )

    def _fold_FuelOrder_Expired(self, event: RawEvent) -> None:
        d, pos = event.data, event.position
        self._order(event, lambda r: _touch(r, d, pos, status="expired"))

    def _fold_FuelOrder_Confirmed(self, event: RawEvent) -> None:
        d, pos = event.data, event.position
        self._order(event, lambda r: _touch(r, d, pos, confirmed=True))

    def _fold_FuelOrder_Refunded(self, event: RawEvent) -> None:
        d, pos = event.data, event.position
        amount = sum(d["parts"].values())

        def change(r: dict[str, Any]) -> None:
            total = r["refunded_fen"] + amount
            status = "refunded" if total >= r["amount_fen"] else "partially_refunded"
            _touch(r, d, pos, refunded_fen=total, status=status)

        self._order(event, change)

    # -- top-ups --------------------------------------------------------------------------

    def _fold_TopUp_Created(self, event: RawEvent) -> None:
        d = event.data
        self.tables["top_ups"].insert(
            {
                "top_up_id": event.originator,
                "out_trade_no": event.originator,
                "member_id": uid(d["member_id"]),
                "method": d["method"],
                "amount_fen": d["amount_fen"],
                "bonus_fen": d["bonus_fen"],
                "status": "created",
                "provider_transaction": None,
                "created_at": ts(d["timestamp"]),
                "expires_at": ts(d["expires_at"]),
                "paid_at": None,
                "position": event.position,
            }
        )

    def _fold_TopUp_Paid(self, event: RawEvent) -> None:
        d, pos = event.data, event.position
        self.tables["top_ups"].update(
            event.originator,
            lambda r: r.update(
                status="paid",
                provider_transaction=d["transaction_id"],
                paid_at=ts(d["paid_at"]),
                position=pos,
            ),
        )

    def _fold_TopUp_Expired(self, event: RawEvent) -> None:
        pos = event.position
        self.tables["top_ups"].update(
            event.originator, lambda r: r.update(status="expired", position=pos)
        )

    # -- refunds and exceptions -----------------------------------------------------------

    def _fold_Refund_Requested(self, event: RawEvent) -> None:
        d = event.data
        payment = uid(d["payment_id"])
        self.tables["refunds"].insert(
            {
                "refund_id": event.originator,
                "out_refund_no": d["out_refund_no"],
                "order_id": uid(d["order_id"]),
                "payment_id": payment,
                "provider": d["provider"],
                "provider_fen": d["provider_fen"],
                "provider_total_fen": d["provider_total_fen"],
                "out_trade_no": d["out_trade_no"],
                "amount_fen": d["amount_fen"],
                "reason": d["reason"],
                "requested_by": d["requested_by"],
                "provider_state": "pending" if d["provider_fen"] > 0 else "none",
                "requested_at": ts(d["timestamp"]),
                "answered_at": None,
                "position": event.position,
            }
        )
        if payment is not None:
            self.tables["exceptions"].update(payment, lambda r: r.update(refund_state="requested"))

    def _fold_Refund_ProviderAnswered(self, event: RawEvent) -> None:
        d, pos = event.data, event.position
        self.tables["refunds"].update(
            event.originator,
            lambda r: r.update(
                provider_state=d["state"], answered_at=ts(d["timestamp"]), position=pos
            ),
        )

    def _fold_ProviderPayment_Received(self, event: RawEvent) -> None:
        d = event.data
        if d["outcome"] == "applied":
            return
        self.tables["exceptions"].insert(
            {
                "payment_id": event.originator,
                "provider": d["provider"],
                "transaction_id": d["transaction_id"],
                "out_trade_no": d["out_trade_no"],
                "order_id": uid(d["order_id"]),
                "amount_fen": d["amount_fen"],
                "outcome": d["outcome"],
                "reason": d["reason"],
                "refund_state": None,
                "received_at": ts(d["timestamp"]),
                "position": event.position,
            }
        )

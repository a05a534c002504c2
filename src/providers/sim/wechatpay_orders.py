"""WeChat Pay simulator state for JSAPI orders and refunds (no HTTP, no signing here)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from providers.sim.clock import beijing_date, beijing_datetime, rfc3339
from providers.sim.errors import SimError


@dataclass
class Order:
    appid: str
    mchid: str
    out_trade_no: str
    description: str
    total: int
    openid: str
    notify_url: str
    prepay_id: str
    state: str = "NOTPAY"  # NOTPAY, SUCCESS, REFUND, CLOSED
    transaction_id: str = ""
    success_time: float | None = None
    refunded: int = 0  # reserved by refunds not CLOSED


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    refund: int
    reason: str
    notify_url: str
    created_at: float
    status: str = "PROCESSING"  # PROCESSING, SUCCESS, CLOSED, ABNORMAL
    success_time: float | None = None


def _digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


class OrderBook:
    def __init__(self, mchid: str, appid: str, clock: Callable[[], float]) -> None:
        self.mchid, self.appid, self.clock = mchid, appid, clock
        self.orders: dict[str, Order] = {}
        self.refunds: dict[str, Refund] = {}

    def prepay(self, body: dict[str, Any]) -> Order:
        try:
            total, openid = body["amount"]["total"], body["payer"]["openid"]
            out_trade_no, description = body["out_trade_no"], body["description"]
            notify_url = body["notify_url"]
        except (KeyError, TypeError) as exc:
            raise SimError(400, "PARAM_ERROR", f"missing {exc}") from None
        if body.get("appid") != self.appid or body.get("mchid") != self.mchid:
            raise SimError(400, "APPID_MCHID_NOT_MATCH", "appid and mchid do not match")
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise SimError(400, "PARAM_ERROR", "amount.total must be a positive integer")
        if not 6 <= len(out_trade_no) <= 32:
            raise SimError(400, "PARAM_ERROR", "out_trade_no must be 6-32 characters")
        existing = self.orders.get(out_trade_no)
        if existing is not None:
            if existing.state in ("SUCCESS", "REFUND"):
                raise SimError(400, "ORDERPAID", "order already paid")
            if existing.state == "CLOSED":
                raise SimError(400, "ORDER_CLOSED", "order closed")
            if (existing.total, existing.openid) != (total, openid):
                raise SimError(400, "INVALID_REQUEST", "parameters differ from the first request")
            return existing
        order = Order(
            self.appid,
            self.mchid,
            out_trade_no,
            description,
            total,
            openid,
            notify_url,
            prepay_id="wx" + _digits(16) + secrets.token_hex(9),
        )
        self.orders[out_trade_no] = order
        return order

    def order(self, out_trade_no: str) -> Order:
        if out_trade_no not in self.orders:
            raise SimError(404, "ORDER_NOT_EXIST", "order does not exist")
        return self.orders[out_trade_no]

    def close(self, out_trade_no: str) -> None:
        order = self.order(out_trade_no)
        if order.state != "NOTPAY" and order.state != "CLOSED":
            raise SimError(400, "ORDERPAID", "order already paid")
        order.state = "CLOSED"

    def mark_paid(self, out_trade_no: str) -> Order:
        order = self.order(out_trade_no)
        if order.state != "NOTPAY":
            raise SimError(400, "ORDER_NOT_PAYABLE", f"order is {order.state}")
        order.state, order.success_time = "SUCCESS", self.clock()
        order.transaction_id = "4200" + _digits(24)
        return order

    def transaction(self, order: Order) -> dict[str, Any]:
        data: dict[str, Any] = {
            "appid": order.appid,
            "mchid": order.mchid,
            "out_trade_no": order.out_trade_no,
            "trade_type": "JSAPI",
            "trade_state": order.state,
            "trade_state_desc": {
                "NOTPAY": "未支付",
                "SUCCESS": "支付成功",
                "REFUND": "转入退款",
                "CLOSED": "已关闭",
            }[order.state],
            "payer": {"openid": order.openid},
            "amount": {"total": order.total, "currency": "CNY", "payer_currency": "CNY"},
        }
        if order.success_time is not None:
            data |= {
                "transaction_id": order.transaction_id,
                "bank_type": "OTHERS",
                "success_time": rfc3339(order.success_time),
                "attach": "",
            }
            data["amount"]["payer_total"] = order.total
        return data

    def create_refund(self, body: dict[str, Any]) -> Refund:
        try:
            out_refund_no, out_trade_no = body["out_refund_no"], body["out_trade_no"]
            amount, total = body["amount"]["refund"], body["amount"]["total"]
        except (KeyError, TypeError) as exc:
            raise SimError(400, "PARAM_ERROR", f"missing {exc}") from None
        existing = self.refunds.get(out_refund_no)
        if existing is not None:
            if (existing.out_trade_no, existing.refund) != (out_trade_no, amount):
                raise SimError(400, "INVALID_REQUEST", "out_refund_no reused with other values")
            return existing
        if out_trade_no not in self.orders:
            raise SimError(404, "RESOURCE_NOT_EXISTS", "order does not exist")
        order = self.orders[out_trade_no]
        if order.state not in ("SUCCESS", "REFUND"):
            raise SimError(400, "INVALID_REQUEST", "order is not paid")
        if total != order.total:
            raise SimError(400, "PARAM_ERROR", "amount.total differs from the order")
        if not isinstance(amount, int) or amount <= 0 or order.refunded + amount > order.total:
            raise SimError(400, "INVALID_REQUEST", "refund exceeds the refundable amount")
        order.refunded += amount
        refund = Refund(
            out_refund_no,
            "5030" + _digits(25),
            out_trade_no,
            amount,
            str(body.get("reason", "")),
            str(body.get("notify_url", "")),
            self.clock(),
        )
        self.refunds[out_refund_no] = refund
        return refund

    def refund(self, out_refund_no: str) -> Refund:
        if out_refund_no not in self.refunds:
            raise SimError(404, "RESOURCE_NOT_EXISTS", "refund does not exist")
        return self.refunds[out_refund_no]

    def settle_refund(self, out_refund_no: str, status: str) -> Refund:
        refund = self.refund(out_refund_no)
        if refund.status != "PROCESSING":
            raise SimError(400, "INVALID_REQUEST", f"refund is already {refund.status}")
        if status not in ("SUCCESS", "CLOSED", "ABNORMAL"):
            raise SimError(400, "PARAM_ERROR", "status must be SUCCESS, CLOSED or ABNORMAL")
        refund.status = status
        order = self.orders[refund.out_trade_no]
        if status == "SUCCESS":
            refund.success_time = self.clock()
            order.state = "REFUND"
        elif status == "CLOSED":
            order.refunded -= refund.refund
        return refund

    def refund_resource(self, refund: Refund, *, for_notification: bool) -> dict[str, Any]:
        order = self.orders[refund.out_trade_no]
        data: dict[str, Any] = {
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "out_trade_no": refund.out_trade_no,
            "transaction_id": order.transaction_id,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": order.total,
                "refund": refund.refund,
                "payer_total": order.total,
                "payer_refund": refund.refund,
            },
        }
        if for_notification:
            data |= {"mchid": self.mchid, "refund_status": refund.status}
        else:
            data |= {
                "channel": "ORIGINAL",
                "create_time": rfc3339(refund.created_at),
                "status": refund.status,
                "funds_account": "AVAILABLE",
            }
            data["amount"] |= {
                "currency": "CNY",
                "settlement_refund": refund.refund,
                "settlement_total": order.total,
                "discount_refund": 0,
            }
        if refund.success_time is not None:
            data["success_time"] = rfc3339(refund.success_time)
        return data

    def bill_records(self, bill_date: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        payments = [
            self._bill_base(o, o.success_time)
            for o in self.orders.values()
            if o.success_time is not None and beijing_date(o.success_time) == bill_date
        ]
        refunds = [
            self._bill_base(self.orders[r.out_trade_no], r.success_time)
            | {"refund_id": r.refund_id, "out_refund_no": r.out_refund_no, "refund": r.refund}
            for r in self.refunds.values()
            if r.success_time is not None and beijing_date(r.success_time) == bill_date
        ]
        return payments, refunds

    @staticmethod
    def _bill_base(order: Order, when: float | None) -> dict[str, Any]:
        return {
            "time": beijing_datetime(when or 0),
            "appid": order.appid,
            "mchid": order.mchid,
            "transaction_id": order.transaction_id,
            "out_trade_no": order.out_trade_no,
            "openid": order.openid,
            "total": order.total,
            "description": order.description,
        }

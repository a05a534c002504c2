"""Alipay simulator state: trades (mini-program JSAPI_PAY) and refunds. No HTTP here.

Errors are Alipay business errors: `SimError(40004, sub_code, sub_msg)`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from providers.alipay_protocol import beijing_time
from providers.amounts import fen_to_yuan, yuan_to_fen
from providers.sim.clock import beijing_date
from providers.sim.errors import SimError

_YUAN = re.compile(r"^\d{1,9}(\.\d{1,2})?$")


@dataclass
class AlipayRefund:
    out_request_no: str
    amount: int
    at: float


@dataclass
class Trade:
    out_trade_no: str
    trade_no: str
    total: int
    subject: str
    buyer_field: str  # buyer_id or buyer_open_id
    buyer: str
    notify_url: str
    created_at: float
    status: str = "WAIT_BUYER_PAY"  # TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED
    paid_at: float | None = None
    closed_at: float | None = None
    refunds: dict[str, AlipayRefund] = field(default_factory=dict)

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds.values())


def parse_amount(text: Any, name: str) -> int:
    if not isinstance(text, str) or not _YUAN.match(text) or yuan_to_fen(text) <= 0:
        raise SimError(40002, "isv.invalid-parameter", f"{name} must be yuan like 12.34")
    return yuan_to_fen(text)


class TradeBook:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.trades: dict[str, Trade] = {}

    def create(self, biz: dict[str, Any], notify_url: str) -> Trade:
        out_trade_no = str(biz.get("out_trade_no", ""))
        total = parse_amount(biz.get("total_amount"), "total_amount")
        buyer_field = "buyer_id" if biz.get("buyer_id") else "buyer_open_id"
        buyer = str(biz.get(buyer_field, ""))
        if not out_trade_no or not biz.get("subject") or not buyer:
            raise SimError(
                40002,
                "isv.missing-parameter",
                "out_trade_no, subject and buyer_id/buyer_open_id are required",
            )
        existing = self.trades.get(out_trade_no)
        if existing is not None:
            if existing.status != "WAIT_BUYER_PAY":
                raise SimError(40004, "ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if existing.total != total:
                raise SimError(40004, "ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            return existing
        now = self.clock()
        trade_no = (
            beijing_date(now).replace("-", "")
            + "22001"
            + "".join(secrets.choice("0123456789") for _ in range(15))
        )
        trade = Trade(
            out_trade_no, trade_no, total, str(biz["subject"]), buyer_field, buyer, notify_url, now
        )
        self.trades[out_trade_no] = trade
        return trade

    def get(self, out_trade_no: str) -> Trade:
        if out_trade_no not in self.trades:
            raise SimError(40004, "ACQ.TRADE_NOT_EXIST", "交易不存在")
        return self.trades[out_trade_no]

    def pay(self, out_trade_no: str) -> Trade:
        trade = self.get(out_trade_no)
        if trade.status != "WAIT_BUYER_PAY":
            raise SimError(40004, "ACQ.TRADE_STATUS_ERROR", f"trade is {trade.status}")
        trade.status, trade.paid_at = "TRADE_SUCCESS", self.clock()
        return trade

    def finish(self, out_trade_no: str) -> Trade:
        """The refund period is over: no more refunds, TRADE_FINISHED."""
        trade = self.get(out_trade_no)
        if trade.status != "TRADE_SUCCESS":
            raise SimError(40004, "ACQ.TRADE_STATUS_ERROR", f"trade is {trade.status}")
        trade.status, trade.closed_at = "TRADE_FINISHED", self.clock()
        return trade

    def refund(self, biz: dict[str, Any]) -> tuple[Trade, AlipayRefund, bool]:
        """Returns (trade, refund, fund_change); a repeated out_request_no changes nothing."""
        trade = self.get(str(biz.get("out_trade_no", "")))
        amount = parse_amount(biz.get("refund_amount"), "refund_amount")
        request_no = str(biz.get("out_request_no") or trade.out_trade_no)
        previous = trade.refunds.get(request_no)
        if previous is not None:
            if previous.amount != amount:
                raise SimError(40004, "ACQ.CONTEXT_INCONSISTENT", "退款请求号已用于其他金额")
            return trade, previous, False
        if trade.status != "TRADE_SUCCESS":
            raise SimError(40004, "ACQ.TRADE_STATUS_ERROR", f"trade is {trade.status}")
        if trade.refunded + amount > trade.total:
            raise SimError(40004, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        refund = AlipayRefund(request_no, amount, self.clock())
        trade.refunds[request_no] = refund
        if trade.refunded == trade.total:
            trade.status, trade.closed_at = "TRADE_CLOSED", refund.at
        return trade, refund, True

    def query(self, trade: Trade) -> dict[str, Any]:
        data = {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "trade_status": trade.status,
            "total_amount": fen_to_yuan(trade.total),
            trade.buyer_field: trade.buyer,
            "buyer_logon_id": "138******00",
        }
        if trade.paid_at is not None:
            data |= {
                "buyer_pay_amount": fen_to_yuan(trade.total),
                "receipt_amount": fen_to_yuan(trade.total - trade.refunded),
                "send_pay_date": beijing_time(trade.paid_at),
            }
        return data

    def bill_records(self, bill_date: str) -> list[tuple[Trade, AlipayRefund | None]]:
        records: list[tuple[Trade, AlipayRefund | None]] = []
        for trade in self.trades.values():
            if trade.paid_at is not None and beijing_date(trade.paid_at) == bill_date:
                records.append((trade, None))
            records.extend(
                (trade, r) for r in trade.refunds.values() if beijing_date(r.at) == bill_date
            )
        return records

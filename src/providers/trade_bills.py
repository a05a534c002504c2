"""Either provider's trade bill as statement lines the ledger reconciles, and downloading it.

What the parsers give is checked before it is trusted: the detail rows must add up to the
file's own totals (a line dropped or edited by hand shows), and every payment row must fall on
the bill's day (a bill uploaded under another date shows). Amounts are the ones the ledger
recorded from the notifications: WeChat's 订单金额 (amount.total), Alipay's 订单金额
(total_amount). Fees are made "what the provider kept": WeChat writes them that way, Alipay
writes them as negative income.
"""

from __future__ import annotations

import csv
import hashlib
import zipfile
from datetime import date
from typing import Any

from ledger.domain.reconciliation import Statement, StatementInvalid, StatementLine
from providers import alipay_bill, wechatpay_bill

WECHAT_PAYMENT, WECHAT_REFUND = "SUCCESS", "REFUND"
ALIPAY_PAYMENT, ALIPAY_REFUND = "交易", "退款"


def read_statement(provider: str, bill_date: date, content: bytes) -> Statement:
    try:
        if provider == "wechat":
            lines = wechat_lines(wechatpay_bill.parse_trade_bill(content))
        elif provider == "alipay":
            lines = alipay_lines(alipay_bill.parse_trade_bill(content))
        else:
            raise StatementInvalid(f"unknown provider {provider!r}")
    except (ValueError, KeyError, IndexError, zipfile.BadZipFile, csv.Error) as exc:
        raise StatementInvalid(f"not a readable {provider} trade bill: {exc}") from None
    _check_day(lines, bill_date)
    return Statement(provider, tuple(lines), hashlib.sha256(content).hexdigest())


def _check_day(lines: list[StatementLine], bill_date: date) -> None:
    day = bill_date.isoformat()
    strays = [line.ref for line in lines if line.kind == "payment" and line.at[:10] != day]
    if strays:
        raise StatementInvalid(
            f"{len(strays)} payment(s) in this statement are not of {day}", first=strays[0]
        )


def _refuse_unless(equal: bool, what: str) -> None:
    if not equal:
        raise StatementInvalid(f"the statement's lines do not add up to its {what}")


def wechat_lines(bill: wechatpay_bill.TradeBill) -> list[StatementLine]:
    rows, summary = bill.rows, bill.summary
    _refuse_unless(summary.count == len(rows), "number of transactions (总交易单数)")
    settled = sum(r.settlement_total_fen for r in rows)
    _refuse_unless(settled == summary.settlement_total_fen, "应结订单总金额")
    _refuse_unless(sum(r.refund_fen for r in rows) == summary.refund_total_fen, "退款总金额")
    _refuse_unless(sum(r.fee_fen for r in rows) == summary.fee_total_fen, "手续费总金额")
    lines = []
    for r in rows:
        if r.trade_state == WECHAT_PAYMENT:
            amount = r.order_total_fen or r.settlement_total_fen
            lines.append(
                StatementLine(
                    "payment", r.transaction_id, r.out_trade_no, amount, r.fee_fen, r.trade_time
                )
            )
        elif r.trade_state == WECHAT_REFUND:
            lines.append(
                StatementLine(
                    "refund", r.out_refund_no, r.out_trade_no, r.refund_fen, r.fee_fen, r.trade_time
                )
            )
        # other states (REVOKED ...) moved no money
    return lines


def alipay_lines(bill: alipay_bill.AlipayBill) -> list[StatementLine]:
    payments = [r for r in bill.rows if r.kind == ALIPAY_PAYMENT]
    refunds = [r for r in bill.rows if r.kind == ALIPAY_REFUND]
    _refuse_unless(len(payments) == bill.trade_count, "交易合计 count")
    _refuse_unless(sum(r.received_fen for r in payments) == bill.trade_received_fen, "交易合计")
    _refuse_unless(len(refunds) == bill.refund_count, "退款合计 count")
    _refuse_unless(sum(r.received_fen for r in refunds) == bill.refund_received_fen, "退款合计")
    lines = [
        StatementLine(
            "payment", r.trade_no, r.out_trade_no, r.order_amount_fen, -r.fee_fen, r.finished_at
        )
        for r in payments
    ]
    lines += [
        StatementLine(
            "refund",
            r.refund_request_no or r.out_trade_no,  # Alipay's default request number
            r.out_trade_no,
            -r.order_amount_fen,
            -r.fee_fen,
            r.finished_at,
        )
        for r in refunds
    ]
    return lines


def download_statement(provider: str, bill_date: date, *, wechat_pay: Any, alipay: Any) -> bytes:
    """The bill from the provider's API (ProviderError when it is not there or not ready)."""
    day = bill_date.isoformat()
    if provider == "wechat":
        return bytes(wechat_pay.trade_bill(day))
    if provider == "alipay":
        # The download URL lives 30 seconds: fetch right after asking.
        return bytes(alipay.download_bill(alipay.bill_download_url(day)))
    raise StatementInvalid(f"unknown provider {provider!r}")

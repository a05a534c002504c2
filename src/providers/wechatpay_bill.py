"""Parse the WeChat Pay v3 trade bill (bill_type=ALL) by header name.

Every value is prefixed with a backtick (so spreadsheets keep long ids as text)
and amounts are yuan strings: both are undone here, amounts to exact fen.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from providers.amounts import yuan_to_fen

SUMMARY_FIRST_COLUMN = "总交易单数"
REQUIRED_COLUMNS = frozenset({"交易时间", "商户订单号", "交易状态", "应结订单金额", "退款金额"})


@dataclass(frozen=True)
class TradeBillRow:
    trade_time: str
    appid: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    openid: str
    trade_type: str
    trade_state: str  # SUCCESS, REFUND, REVOKED, ...
    settlement_total_fen: int  # 应结订单金额
    coupon_fen: int
    refund_id: str
    out_refund_no: str
    refund_fen: int
    refund_status: str
    description: str
    attach: str
    fee_fen: int  # 手续费, negative on refund rows
    fee_rate: str
    order_total_fen: int  # 订单金额
    requested_refund_fen: int  # 申请退款金额
    raw: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class TradeBillSummary:
    count: int
    settlement_total_fen: int
    refund_total_fen: int
    coupon_refund_total_fen: int
    fee_total_fen: int
    order_total_fen: int
    requested_refund_total_fen: int


@dataclass(frozen=True)
class TradeBill:
    rows: list[TradeBillRow]
    summary: TradeBillSummary


def _clean(value: str) -> str:
    return value.strip().removeprefix("`")


def _fen(record: dict[str, str], name: str) -> int:
    value = record.get(name, "")
    return yuan_to_fen(value) if value else 0


def parse_trade_bill(csv_bytes: bytes) -> TradeBill:
    text = csv_bytes.decode("utf-8-sig")
    lines = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    if not lines:
        raise ValueError("empty trade bill")
    header = [_clean(c) for c in lines[0]]
    missing = REQUIRED_COLUMNS.difference(header)
    if missing:
        raise ValueError(f"trade bill lacks columns {sorted(missing)}")
    rows: list[TradeBillRow] = []
    summary: TradeBillSummary | None = None
    index = 1
    while index < len(lines):
        cells = [_clean(c) for c in lines[index]]
        if cells[0] == SUMMARY_FIRST_COLUMN:
            if index + 1 >= len(lines):
                raise ValueError("trade bill summary header without a summary row")
            summary = _summary(
                dict(zip(cells, (_clean(c) for c in lines[index + 1]), strict=False))
            )
            break
        rows.append(_row(dict(zip(header, cells, strict=False))))
        index += 1
    if summary is None:
        raise ValueError("trade bill has no summary")
    return TradeBill(rows, summary)


def _row(r: dict[str, str]) -> TradeBillRow:
    return TradeBillRow(
        trade_time=r.get("交易时间", ""),
        appid=r.get("公众账号ID", ""),
        mchid=r.get("商户号", ""),
        transaction_id=r.get("微信订单号", ""),
        out_trade_no=r.get("商户订单号", ""),
        openid=r.get("用户标识", ""),
        trade_type=r.get("交易类型", ""),
        trade_state=r.get("交易状态", ""),
        settlement_total_fen=_fen(r, "应结订单金额"),
        coupon_fen=_fen(r, "代金券金额"),
        refund_id=r.get("微信退款单号", ""),
        out_refund_no=r.get("商户退款单号", ""),
        refund_fen=_fen(r, "退款金额"),
        refund_status=r.get("退款状态", ""),
        description=r.get("商品名称", ""),
        attach=r.get("商户数据包", ""),
        fee_fen=_fen(r, "手续费"),
        fee_rate=r.get("费率", ""),
        order_total_fen=_fen(r, "订单金额"),
        requested_refund_fen=_fen(r, "申请退款金额"),
        raw=r,
    )


def _summary(r: dict[str, str]) -> TradeBillSummary:
    return TradeBillSummary(
        count=int(r.get("总交易单数", "0") or 0),
        settlement_total_fen=_fen(r, "应结订单总金额"),
        refund_total_fen=_fen(r, "退款总金额"),
        coupon_refund_total_fen=_fen(r, "充值券退款总金额"),
        fee_total_fen=_fen(r, "手续费总金额"),
        order_total_fen=_fen(r, "订单总金额"),
        requested_refund_total_fen=_fen(r, "申请退款总金额"),
    )

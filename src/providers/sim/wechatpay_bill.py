"""Render a WeChat Pay v3 trade bill (bill_type=ALL) as WeChat writes it.

Header lines are plain; every value is prefixed with a backtick; amounts are
yuan. Refund rows carry zero order amounts and a negative fee, so each summary
total is the plain sum of its column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from providers.amounts import fen_to_yuan

HEADER = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
]
SUMMARY_HEADER = [
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
]
FEE_RATE_PER_MILLE = 6  # 0.60%


def fee_fen(amount_fen: int) -> int:
    # Integer half-up rounding of 0.6%: provider fees are whole fen.
    return (amount_fen * FEE_RATE_PER_MILLE + 500) // 1000


def render_trade_bill(
    payments: Iterable[dict[str, str | int]], refunds: Iterable[dict[str, str | int]]
) -> bytes:
    """payments: time, appid, mchid, transaction_id, out_trade_no, openid, total, description.
    refunds: the same plus refund_id, out_refund_no, refund (fen)."""
    rows: list[tuple[dict[str, str], dict[str, int]]] = []
    for p in payments:
        total = int(p["total"])
        rows.append(
            (
                _ids(p) | {"交易状态": "SUCCESS"},
                {"应结订单金额": total, "手续费": fee_fen(total), "订单金额": total},
            )
        )
    for r in refunds:
        refund = int(r["refund"])
        rows.append(
            (
                _ids(r)
                | {
                    "交易状态": "REFUND",
                    "微信退款单号": str(r["refund_id"]),
                    "商户退款单号": str(r["out_refund_no"]),
                    "退款类型": "ORIGINAL",
                    "退款状态": "SUCCESS",
                },
                {"退款金额": refund, "手续费": -fee_fen(refund), "申请退款金额": refund},
            )
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    totals = dict.fromkeys(_AMOUNT_COLUMNS, 0)
    for texts, amounts in rows:
        for column in _AMOUNT_COLUMNS:
            totals[column] += amounts.get(column, 0)
        cells = texts | {c: fen_to_yuan(amounts.get(c, 0)) for c in _AMOUNT_COLUMNS}
        writer.writerow("`" + cells.get(column, "") for column in HEADER)
    writer.writerow(SUMMARY_HEADER)
    writer.writerow("`" + v for v in [str(len(rows))] + [fen_to_yuan(totals[c]) for c in _SUMMED])
    return out.getvalue().encode("utf-8")


_AMOUNT_COLUMNS = (
    "应结订单金额",
    "代金券金额",
    "退款金额",
    "充值券退款金额",
    "手续费",
    "订单金额",
    "申请退款金额",
)
# Summary columns after 总交易单数, in order, and the detail column each sums.
_SUMMED = ("应结订单金额", "退款金额", "充值券退款金额", "手续费", "订单金额", "申请退款金额")


def _ids(record: dict[str, str | int]) -> dict[str, str]:
    return {
        "交易时间": str(record["time"]),
        "公众账号ID": str(record["appid"]),
        "商户号": str(record["mchid"]),
        "特约商户号": "0",
        "微信订单号": str(record["transaction_id"]),
        "商户订单号": str(record["out_trade_no"]),
        "用户标识": str(record["openid"]),
        "交易类型": "JSAPI",
        "付款银行": "OTHERS",
        "货币种类": "CNY",
        "微信退款单号": "0",
        "商户退款单号": "0",
        "商品名称": str(record["description"]),
        "费率": "0.60%",
    }

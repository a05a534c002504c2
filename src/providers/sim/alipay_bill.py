"""Render the Alipay trade statement zip as Alipay ships it: two GBK CSVs.

`..._业务明细.csv` has `#` comment lines, the header, one row per payment (交易)
or refund (退款, negative amounts), id fields ending with a tab, then `#` totals;
`..._业务明细(汇总).csv` has the per-store summary with a 合计 row.
"""

from __future__ import annotations

import csv
import io
import zipfile

from providers.amounts import fen_to_yuan
from providers.sim.alipay_trades import AlipayRefund, Trade
from providers.sim.clock import beijing_datetime

DETAIL_HEADER = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
]
SUMMARY_HEADER = [
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
]
_ZERO_COLUMNS = (
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "分润（元）",
)


def fee_fen(amount_fen: int) -> int:
    return (amount_fen * 6 + 500) // 1000  # 0.6%, whole fen, half up


def render_statement_zip(
    records: list[tuple[Trade, AlipayRefund | None]], pid: str, bill_date: str, exported_at: float
) -> bytes:
    day = bill_date.replace("-", "")
    span = f"#起始日期：[{bill_date} 00:00:00]   终止日期：[{bill_date} 23:59:59]"
    counts = {"交易": 0, "退款": 0}
    received = {"交易": 0, "退款": 0}
    order_total = fee_total = 0
    detail = io.StringIO()
    detail.write(
        f"#支付宝业务明细查询\r\n#账号：[{pid}]\r\n{span}\r\n"
        "#-----------------------------------------业务明细列表"
        "----------------------------------------\r\n"
    )
    writer = csv.writer(detail, lineterminator="\r\n")
    writer.writerow(DETAIL_HEADER)
    for trade, refund in records:
        kind = "交易" if refund is None else "退款"
        amount = trade.total if refund is None else -refund.amount
        fee = -fee_fen(abs(amount)) if refund is None else fee_fen(abs(amount))
        finished = trade.paid_at if refund is None else refund.at
        row = {
            "支付宝交易号": trade.trade_no + "\t",
            "商户订单号": trade.out_trade_no + "\t",
            "业务类型": kind,
            "商品名称": trade.subject,
            "创建时间": beijing_datetime(trade.created_at),
            "完成时间": beijing_datetime(finished or trade.created_at),
            "对方账户": "138******00",
            "订单金额（元）": fen_to_yuan(amount),
            "商家实收（元）": fen_to_yuan(amount),
            "服务费（元）": fen_to_yuan(fee),
            "退款批次号/请求号": "" if refund is None else refund.out_request_no + "\t",
        }
        row |= {column: "0.00" for column in _ZERO_COLUMNS}
        writer.writerow(row.get(column, "") for column in DETAIL_HEADER)
        counts[kind] += 1
        received[kind] += amount
        order_total += amount
        fee_total += fee
    detail.write(
        "#-----------------------------------------业务明细列表结束"
        "------------------------------------\r\n"
    )
    for kind in ("交易", "退款"):
        detail.write(
            f"#{kind}合计：{counts[kind]}笔，商家实收共：{fen_to_yuan(received[kind])}元，"
            "商家优惠共：0.00元\r\n"
        )
    detail.write(f"#导出时间：[{beijing_datetime(exported_at)}]\r\n")

    summary = io.StringIO()
    summary.write(f"#支付宝业务汇总查询\r\n#账号：[{pid}]\r\n{span}\r\n")
    total_received = received["交易"] + received["退款"]
    csv.writer(summary, lineterminator="\r\n").writerows(
        [
            SUMMARY_HEADER,
            [
                "合计",
                "",
                counts["交易"],
                counts["退款"],
                fen_to_yuan(order_total),
                fen_to_yuan(total_received),
                "0.00",
                "0.00",
                "0.00",
                fen_to_yuan(fee_total),
                "0.00",
                fen_to_yuan(total_received + fee_total),
            ],
        ]
    )
    summary.write(f"#导出时间：[{beijing_datetime(exported_at)}]\r\n")

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            f"{pid}_{day}_业务明细.csv", detail.getvalue().encode("gbk", errors="replace")
        )
        archive.writestr(
            f"{pid}_{day}_业务明细(汇总).csv", summary.getvalue().encode("gbk", errors="replace")
        )
    return out.getvalue()

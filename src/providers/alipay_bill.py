"""Parse the Alipay trade statement zip (GBK CSVs) by header name.

Detail rows are `交易` or `退款` (refunds carry negative amounts); id fields end
with a tab so spreadsheets keep them as text; `#` lines are comments and totals.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field

from providers.amounts import yuan_to_fen

DETAIL_SUFFIX = "_业务明细.csv"
SUMMARY_SUFFIX = "_业务明细(汇总).csv"
_FOOTER = re.compile(r"#(交易|退款)合计：(\d+)笔，商家实收共：(-?[\d.]+)元")


@dataclass(frozen=True)
class AlipayBillRow:
    trade_no: str
    out_trade_no: str
    kind: str  # 交易 or 退款
    subject: str
    created_at: str
    finished_at: str
    order_amount_fen: int  # 订单金额（元）
    received_fen: int  # 商家实收（元）: negative on refunds
    fee_fen: int  # 服务费（元）
    refund_request_no: str  # 退款批次号/请求号
    raw: dict[str, str] = field(repr=False)

    @property
    def is_refund(self) -> bool:
        return self.kind == "退款"


@dataclass(frozen=True)
class AlipayBill:
    rows: list[AlipayBillRow]
    trade_count: int  # from the detail footer
    trade_received_fen: int
    refund_count: int
    refund_received_fen: int
    summary: dict[str, str]  # the 合计 row of the (汇总) file, by header name


def parse_trade_bill(zip_bytes: bytes) -> AlipayBill:
    files = _members(zip_bytes)
    detail = next((text for name, text in files.items() if name.endswith(DETAIL_SUFFIX)), None)
    if detail is None:
        raise ValueError("statement zip has no 业务明细 file")
    summary = next((text for name, text in files.items() if name.endswith(SUMMARY_SUFFIX)), "")
    rows, totals = _detail(detail)
    (trade_count, trade_fen), (refund_count, refund_fen) = totals["交易"], totals["退款"]
    return AlipayBill(
        rows=rows,
        trade_count=trade_count,
        trade_received_fen=trade_fen,
        refund_count=refund_count,
        refund_received_fen=refund_fen,
        summary=_summary_total(summary),
    )


def _members(zip_bytes: bytes) -> dict[str, str]:
    out = {}
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for info in archive.infolist():
            name = info.filename
            if not info.flag_bits & 0x800:
                # Without the UTF-8 flag zipfile decoded the name as cp437; Alipay wrote GBK.
                name = name.encode("cp437").decode("gbk", errors="replace")
            out[name] = archive.read(info).decode("gb18030")  # a superset of GBK
    return out


def _clean(value: str) -> str:
    return value.strip().rstrip("\t").strip()


def _table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        return []
    reader = csv.reader(lines)
    header = [_clean(c) for c in next(reader)]
    return [dict(zip(header, (_clean(c) for c in cells), strict=False)) for cells in reader]


def _detail(text: str) -> tuple[list[AlipayBillRow], dict[str, tuple[int, int]]]:
    rows = [_row(r) for r in _table(text) if r.get("业务类型") in ("交易", "退款")]
    totals = {"交易": (0, 0), "退款": (0, 0)}
    for match in _FOOTER.finditer(text):
        totals[match.group(1)] = (int(match.group(2)), yuan_to_fen(match.group(3)))
    return rows, totals


def _fen(record: dict[str, str], name: str) -> int:
    value = record.get(name, "")
    return yuan_to_fen(value) if value else 0


def _row(r: dict[str, str]) -> AlipayBillRow:
    return AlipayBillRow(
        trade_no=r.get("支付宝交易号", ""),
        out_trade_no=r.get("商户订单号", ""),
        kind=r.get("业务类型", ""),
        subject=r.get("商品名称", ""),
        created_at=r.get("创建时间", ""),
        finished_at=r.get("完成时间", ""),
        order_amount_fen=_fen(r, "订单金额（元）"),
        received_fen=_fen(r, "商家实收（元）"),
        fee_fen=_fen(r, "服务费（元）"),
        refund_request_no=r.get("退款批次号/请求号", ""),
        raw=r,
    )


def _summary_total(text: str) -> dict[str, str]:
    for record in _table(text):
        if record.get("门店编号") == "合计":
            return record
    return {}

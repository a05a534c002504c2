"""The WeChat Pay trade bill: download with its SHA1 check, parse by header name to fen."""

import csv
import io

import pytest

from providers.errors import ProviderError
from providers.wechatpay_bill import parse_trade_bill

AMOUNTS = {"FUEL0001": 30000, "FUEL0002": 12345, "FUEL0003": 1}


@pytest.fixture
def day(world):
    for no, fen in AMOUNTS.items():
        world.wechatpay.jsapi_prepay(no, "92# 汽油", fen, "o-user-1")
        world.run(world.sims.wechatpay.pay(no))
    world.wechatpay.jsapi_prepay("UNPAID01", "never paid", 500, "o-user-2")
    world.wechatpay.refund("FUEL0002", "RF0001", 2345, 12345)
    world.run(world.sims.wechatpay.settle_refund("RF0001"))
    world.wechatpay.refund("FUEL0001", "RF0002", 100, 30000)  # still processing: not billed
    return world


def test_bill_rows_are_exact_fen_and_add_up_to_the_summary(day):
    bill = parse_trade_bill(day.wechatpay.trade_bill(day.today))
    payments = [r for r in bill.rows if r.trade_state == "SUCCESS"]
    refunds = [r for r in bill.rows if r.trade_state == "REFUND"]
    assert {r.out_trade_no: r.settlement_total_fen for r in payments} == AMOUNTS
    assert [(r.out_trade_no, r.out_refund_no, r.refund_fen) for r in refunds] == [
        ("FUEL0002", "RF0001", 2345)
    ]
    assert {r.out_trade_no: r.fee_fen for r in payments} == {
        "FUEL0001": 180,
        "FUEL0002": 74,
        "FUEL0003": 0,
    }
    assert refunds[0].fee_fen == -14
    summary = bill.summary
    assert summary.count == len(bill.rows) == 4
    assert summary.settlement_total_fen == sum(r.settlement_total_fen for r in bill.rows) == 42346
    assert summary.refund_total_fen == sum(r.refund_fen for r in bill.rows) == 2345
    assert summary.fee_total_fen == sum(r.fee_fen for r in bill.rows) == 240
    assert summary.order_total_fen == sum(r.order_total_fen for r in bill.rows)
    assert all(not r.transaction_id.startswith("`") for r in bill.rows)
    assert payments[0].appid == day.wechatpay.config.appid


def test_the_file_keeps_the_real_layout(day):
    text = day.wechatpay.trade_bill(day.today).decode()
    lines = text.splitlines()
    assert lines[0].startswith("交易时间,公众账号ID,商户号")
    assert lines[1].startswith("`2026-03-10 ")
    assert lines[-2].startswith("总交易单数,")
    assert lines[-1] == "`4,`423.46,`23.45,`0.00,`2.40,`423.46,`23.45"


def test_parsing_is_by_header_name_not_position(day):
    rows = list(csv.reader(io.StringIO(day.wechatpay.trade_bill(day.today).decode())))
    detail_end = next(i for i, row in enumerate(rows) if row[0] == "总交易单数")
    order = list(reversed(range(len(rows[0]))))
    shuffled = [[row[i] for i in order] for row in rows[:detail_end]] + rows[detail_end:]
    out = io.StringIO()
    csv.writer(out).writerows(shuffled)
    again = parse_trade_bill(out.getvalue().encode())
    original = parse_trade_bill(day.wechatpay.trade_bill(day.today))
    assert [(r.out_trade_no, r.settlement_total_fen, r.refund_fen) for r in again.rows] == [
        (r.out_trade_no, r.settlement_total_fen, r.refund_fen) for r in original.rows
    ]


def test_a_bill_whose_sha1_differs_is_refused(day):
    day.sims.wechatpay.corrupt_bill_hash = True
    with pytest.raises(ProviderError) as error:
        day.wechatpay.trade_bill(day.today)
    assert error.value.code == "bill_hash_mismatch"


def test_a_future_bill_does_not_exist_and_an_empty_day_has_only_a_summary(world):
    with pytest.raises(ProviderError) as error:
        world.wechatpay.trade_bill("2026-03-11")
    assert error.value.code == "NO_STATEMENT_EXIST"
    empty = parse_trade_bill(world.wechatpay.trade_bill("2026-03-09"))
    assert (empty.rows, empty.summary.count, empty.summary.settlement_total_fen) == ([], 0, 0)


def test_a_bill_without_the_needed_columns_is_refused():
    with pytest.raises(ValueError, match="lacks columns"):
        parse_trade_bill("交易时间,商户订单号\n`2026-03-10,`X\n".encode())

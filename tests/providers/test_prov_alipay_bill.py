"""The Alipay statement: short-lived URL, zip of GBK CSVs, parsed by header name to fen."""

import io
import zipfile

import pytest

from providers.alipay_bill import parse_trade_bill
from providers.amounts import yuan_to_fen
from providers.errors import ProviderError

AMOUNTS = {"ALI0001": 30000, "ALI0002": 9999, "ALI0003": 1}


@pytest.fixture
def day(world):
    for no, fen in AMOUNTS.items():
        world.alipay.trade_create(no, fen, "0# 柴油", "2088102146225135")
        world.run(world.sims.alipay.pay(no))
    world.alipay.trade_create("UNPAID01", 500, "never paid", "2088102146225135")
    world.alipay.trade_refund("ALI0002", "ARF0001", 999)
    world.alipay.trade_refund("ALI0002", "ARF0002", 1000)
    return world


def statement(world):
    return world.alipay.download_bill(world.alipay.bill_download_url(world.today))


def test_rows_are_exact_fen_with_negative_refunds(day):
    bill = parse_trade_bill(statement(day))
    trades = [r for r in bill.rows if not r.is_refund]
    refunds = [r for r in bill.rows if r.is_refund]
    assert {r.out_trade_no: r.received_fen for r in trades} == AMOUNTS
    assert sorted((r.refund_request_no, r.received_fen) for r in refunds) == [
        ("ARF0001", -999),
        ("ARF0002", -1000),
    ]
    assert all(not r.trade_no.endswith("\t") and r.trade_no for r in bill.rows)
    assert {r.out_trade_no: r.fee_fen for r in trades} == {
        "ALI0001": -180,
        "ALI0002": -60,
        "ALI0003": 0,
    }


def test_rows_add_up_to_the_footer_and_the_summary_file(day):
    bill = parse_trade_bill(statement(day))
    trades = [r for r in bill.rows if not r.is_refund]
    refunds = [r for r in bill.rows if r.is_refund]
    assert (bill.trade_count, bill.trade_received_fen) == (3, sum(r.received_fen for r in trades))
    assert (bill.refund_count, bill.refund_received_fen) == (2, -1999)
    summary = bill.summary
    assert int(summary["交易订单总笔数"]) == 3 and int(summary["退款订单总笔数"]) == 2
    assert yuan_to_fen(summary["商家实收（元）"]) == sum(r.received_fen for r in bill.rows) == 38001
    assert yuan_to_fen(summary["服务费（元）"]) == sum(r.fee_fen for r in bill.rows)
    assert yuan_to_fen(summary["实收净额（元）"]) == 38001 + sum(r.fee_fen for r in bill.rows)
    assert len(refunds) == 2


def test_the_zip_holds_the_two_gbk_files(day):
    with zipfile.ZipFile(io.BytesIO(statement(day))) as archive:
        names = archive.namelist()
        detail = next(n for n in names if n.endswith("_业务明细.csv"))
        text = archive.read(detail).decode("gbk")
    assert any(n.endswith("_业务明细(汇总).csv") for n in names)
    assert text.startswith("#支付宝业务明细查询")
    assert "订单金额（元）,商家实收（元）" in text
    assert "ARF0001\t" in text


def test_gbk_member_names_without_the_utf8_flag_are_found(day):
    class GbkName(zipfile.ZipInfo):
        # Write the name as GBK bytes without the UTF-8 flag, the way Alipay's zips come.
        def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's own hook
            return self.filename.encode("gbk"), self.flag_bits

    original = zipfile.ZipFile(io.BytesIO(statement(day)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in original.infolist():
            archive.writestr(GbkName(info.filename), original.read(info))
    for info in zipfile.ZipFile(io.BytesIO(out.getvalue())).infolist():
        assert not info.flag_bits & 0x800
    assert len(parse_trade_bill(out.getvalue()).rows) == 5


def test_the_download_url_lives_30_seconds(day):
    url = day.alipay.bill_download_url(day.today)
    day.clock.advance(31)
    with pytest.raises(ProviderError) as error:
        day.alipay.download_bill(url)
    assert (error.value.code, error.value.status) == ("bill_download_failed", 404)


def test_a_future_statement_does_not_exist(world):
    with pytest.raises(ProviderError) as error:
        world.alipay.bill_download_url("2026-03-11")
    assert error.value.code == "isp.bill_not_exist"

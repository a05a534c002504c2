"""Our Alipay client against the simulator, and Alipay notification verification."""

import pytest

from providers.alipay_protocol import NOTIFY_EXCLUDED, sign_params
from providers.errors import NotificationRejected, ProviderError
from providers.keys import load_private_key

BUYER = "2088102146225135"


def created(world, no="ALI0001", fen=30000, buyer=BUYER):
    return world.alipay.trade_create(no, fen, "95# 汽油", buyer)


def test_create_query_pay_and_notify(world):
    trade_no = created(world)
    assert world.alipay.trade_query("ALI0001")["trade_status"] == "WAIT_BUYER_PAY"
    [delivery] = world.run(world.sims.alipay.pay("ALI0001"))
    assert (delivery.status, delivery.reply, delivery.accepted) == (200, b"success", True)
    [seen] = world.receiver.alipay_seen
    assert (seen.trade_status, seen.out_trade_no, seen.trade_no, seen.total_fen) == (
        "TRADE_SUCCESS",
        "ALI0001",
        trade_no,
        30000,
    )
    assert seen.params["buyer_id"] == BUYER
    queried = world.alipay.trade_query("ALI0001")
    assert (queried["trade_status"], queried["total_amount"]) == ("TRADE_SUCCESS", "300.00")


def test_an_openid_buyer_is_sent_as_buyer_open_id(world):
    created(world, buyer="074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5")
    assert world.sims.alipay.trades.get("ALI0001").buyer_field == "buyer_open_id"


def test_success_and_finished_both_arrive_possibly_reordered(world):
    created(world)
    deliveries = world.run(
        world.sims.alipay.pay("ALI0001", finish=True, times=2, shuffle=True, seed=1)
    )
    assert len(deliveries) == 4 and all(d.accepted for d in deliveries)
    statuses = [n.trade_status for n in world.receiver.alipay_seen]
    assert sorted(statuses) == ["TRADE_FINISHED"] * 2 + ["TRADE_SUCCESS"] * 2
    assert statuses != sorted(statuses, reverse=True)  # seed 1 puts a FINISHED first


def test_refunds_partial_repeated_and_over_the_total(world):
    created(world)
    world.run(world.sims.alipay.pay("ALI0001"))
    first = world.alipay.trade_refund("ALI0001", "ARF0001", 1000)
    assert (first["fund_change"], first["refund_fee"]) == ("Y", "10.00")
    again = world.alipay.trade_refund("ALI0001", "ARF0001", 1000)
    assert (again["fund_change"], again["refund_fee"]) == ("N", "10.00")
    found = world.alipay.refund_query("ALI0001", "ARF0001")
    assert (found["refund_status"], found["refund_amount"]) == ("REFUND_SUCCESS", "10.00")
    assert "refund_status" not in world.alipay.refund_query("ALI0001", "ARF9999")
    with pytest.raises(ProviderError) as error:
        world.alipay.trade_refund("ALI0001", "ARF0002", 29001)
    assert (error.value.code, error.value.retryable) == ("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", False)
    world.alipay.trade_refund("ALI0001", "ARF0003", 29000)
    assert world.alipay.trade_query("ALI0001")["trade_status"] == "TRADE_CLOSED"


def test_refund_notifications_when_enabled(world):
    world.sims.alipay.notify_refunds = True
    created(world)
    world.run(world.sims.alipay.pay("ALI0001"))
    world.alipay.trade_refund("ALI0001", "ARF0001", 1000)
    refund = world.receiver.alipay_seen[-1]
    assert (refund.trade_status, refund.refund_fen, refund.out_biz_no) == (
        "TRADE_SUCCESS",
        1000,
        "ARF0001",
    )
    world.alipay.trade_refund("ALI0001", "ARF0002", 29000)
    closed = world.receiver.alipay_seen[-1]
    assert (closed.trade_status, closed.refund_fen) == ("TRADE_CLOSED", 30000)
    assert "gmt_close" in closed.params


def test_business_and_system_errors(world):
    with pytest.raises(ProviderError) as missing:
        world.alipay.trade_query("NOPE")
    assert missing.value.code == "ACQ.TRADE_NOT_EXIST"
    world.sims.alipay.fail_next()
    with pytest.raises(ProviderError) as busy:
        created(world)
    assert (busy.value.code, busy.value.retryable) == ("isp.unknow-error", True)
    created(world)
    with pytest.raises(ProviderError) as changed:
        created(world, fen=1)
    assert changed.value.code == "ACQ.CONTEXT_INCONSISTENT"


def test_a_request_signed_with_another_key_is_refused(world):
    forged = world.alipay_client(app_private_key_pem=world.keys.merchant.private_pem)
    with pytest.raises(ProviderError) as error:
        forged.trade_query("ALI0001")
    assert error.value.code == "isv.invalid-signature"


def test_a_response_not_signed_by_alipay_is_refused(world):
    created(world)
    trusting_wrong_key = world.alipay_client(alipay_public_key_pem=world.keys.alipay_app.public_pem)
    with pytest.raises(ProviderError) as error:
        trusting_wrong_key.trade_query("ALI0001")
    assert error.value.code == "bad_response_signature"


# --- notifications ---------------------------------------------------------------------


def notification(world, **changes):
    params = {
        "notify_type": "trade_status_sync",
        "notify_id": "ac05099524730693a8b330c5ecf72da9",
        "notify_time": "2026-03-10 11:00:00",
        "app_id": world.alipay.config.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": "2026031022001400000000000001",
        "out_trade_no": "ALI0001",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "300.00",
        "subject": "95# 汽油 & 洗车=套餐",
        "fund_bill_list": '[{"amount":"300.00","fundChannel":"ALIPAYACCOUNT"}]',
    } | changes
    key = load_private_key(world.keys.alipay_platform.private_pem)
    return params | {"sign": sign_params(key, params, NOTIFY_EXCLUDED)}


def rejection(world, form):
    with pytest.raises(NotificationRejected) as error:
        world.alipay.verify_notification(form)
    return error.value.code


def test_a_genuine_notification_verifies_with_raw_values(world):
    seen = world.alipay.verify_notification(notification(world))
    assert (seen.total_fen, seen.refund_fen, seen.params["subject"]) == (
        30000,
        None,
        "95# 汽油 & 洗车=套餐",
    )


def test_parameter_order_does_not_matter(world):
    form = notification(world)
    assert world.alipay.verify_notification(dict(reversed(list(form.items())))).total_fen == 30000


def test_a_forged_value_is_rejected(world):
    assert rejection(world, notification(world) | {"total_amount": "0.01"}) == "bad_signature"
    assert rejection(world, notification(world) | {"extra": "x"}) == "bad_signature"
    assert rejection(world, notification(world) | {"sign_type": "RSA"}) == "bad_signature"


def test_a_missing_sign_is_rejected(world):
    form = notification(world)
    del form["sign"]
    assert rejection(world, form) == "missing_sign"


def test_another_apps_notification_is_rejected(world):
    assert rejection(world, notification(world, app_id="2021000000009999")) == "app_id_mismatch"


def test_delivery_faults_reach_our_endpoint_as_rejections(world):
    created(world)
    [forged] = world.run(world.sims.alipay.pay("ALI0001", bad_signature=True))
    assert (forged.reply, forged.accepted) == (b"fail", False)
    [retry] = world.run(world.sims.alipay.retry_failed())
    assert retry.accepted
    assert world.receiver.rejected == ["bad_signature"]
    assert world.receiver.alipay_seen[0].trade_status == "TRADE_SUCCESS"


def test_amount_override_is_signed_so_our_server_must_compare_amounts(world):
    created(world)
    world.run(world.sims.alipay.pay("ALI0001", amount_override=1))
    assert world.receiver.alipay_seen[0].total_fen == 1

"""Our WeChat Pay client against the simulator: every call, signed both ways."""

import httpx
import pytest

from providers.crypto import rsa_verify
from providers.errors import ProviderError
from providers.keys import load_private_key, load_public_key
from providers.sim.errors import SimError
from providers.wechatpay_protocol import build_authorization


def order(world, no="FUEL0001", fen=30000):
    prepay_id = world.wechatpay.jsapi_prepay(no, "92# 汽油 300 元", fen, "o-user-1")
    return prepay_id


def test_prepay_gives_signed_mini_program_parameters(world):
    prepay_id = order(world)
    assert prepay_id.startswith("wx")
    params = world.wechatpay.mini_program_pay_params(prepay_id)
    assert params["package"] == f"prepay_id={prepay_id}"
    assert params["signType"] == "RSA"
    assert params["timeStamp"] == str(int(world.clock()))
    message = (
        f"{world.wechatpay.config.appid}\n{params['timeStamp']}\n{params['nonceStr']}\n"
        f"{params['package']}\n"
    ).encode()
    assert rsa_verify(load_public_key(world.keys.merchant.public_pem), message, params["paySign"])


def test_same_order_prepaid_twice_gives_the_same_prepay_id(world):
    assert order(world) == order(world)
    with pytest.raises(ProviderError) as error:
        order(world, fen=29999)
    assert error.value.code == "INVALID_REQUEST"


def test_query_follows_the_order_from_unpaid_to_paid(world):
    order(world)
    assert world.wechatpay.query_order("FUEL0001")["trade_state"] == "NOTPAY"
    world.run(world.sims.wechatpay.pay("FUEL0001"))
    paid = world.wechatpay.query_order("FUEL0001")
    assert paid["trade_state"] == "SUCCESS"
    assert paid["amount"] == {
        "total": 30000,
        "payer_total": 30000,
        "currency": "CNY",
        "payer_currency": "CNY",
    }
    assert paid["transaction_id"].startswith("4200")
    [seen] = world.receiver.wechat_seen
    assert seen.event_type == "TRANSACTION.SUCCESS"
    assert seen.resource["out_trade_no"] == "FUEL0001"
    assert seen.resource["amount"]["total"] == 30000
    assert seen.resource["transaction_id"] == paid["transaction_id"]


def test_close_an_unpaid_order_and_paying_it_then_fails(world):
    order(world)
    world.wechatpay.close_order("FUEL0001")
    assert world.wechatpay.query_order("FUEL0001")["trade_state"] == "CLOSED"
    with pytest.raises(ProviderError):
        order(world)


def test_refund_is_processing_then_success_with_a_notification(world):
    order(world)
    world.run(world.sims.wechatpay.pay("FUEL0001"))
    created = world.wechatpay.refund("FUEL0001", "RF0001", 5000, 30000, "油品退款")
    assert created["status"] == "PROCESSING"
    assert created["amount"]["refund"] == 5000
    assert world.wechatpay.query_refund("RF0001")["status"] == "PROCESSING"
    world.run(world.sims.wechatpay.settle_refund("RF0001"))
    done = world.wechatpay.query_refund("RF0001")
    assert done["status"] == "SUCCESS" and "success_time" in done
    refund_note = world.receiver.wechat_seen[-1]
    assert refund_note.event_type == "REFUND.SUCCESS"
    assert refund_note.resource["refund_status"] == "SUCCESS"
    assert refund_note.resource["amount"] == {
        "total": 30000,
        "refund": 5000,
        "payer_total": 30000,
        "payer_refund": 5000,
    }
    assert refund_note.merchant_id == world.wechatpay.config.mchid
    assert world.wechatpay.query_order("FUEL0001")["trade_state"] == "REFUND"


def test_refund_retried_with_the_same_number_is_the_same_refund(world):
    order(world)
    world.run(world.sims.wechatpay.pay("FUEL0001"))
    first = world.wechatpay.refund("FUEL0001", "RF0001", 5000, 30000)
    again = world.wechatpay.refund("FUEL0001", "RF0001", 5000, 30000)
    assert again["refund_id"] == first["refund_id"]
    with pytest.raises(ProviderError) as error:
        world.wechatpay.refund("FUEL0001", "RF0002", 25001, 30000)
    assert error.value.code == "INVALID_REQUEST"


def test_closed_and_abnormal_refunds_notify_with_their_event_type(world):
    order(world)
    world.run(world.sims.wechatpay.pay("FUEL0001"))
    world.wechatpay.refund("FUEL0001", "RF0001", 30000, 30000)
    world.run(world.sims.wechatpay.settle_refund("RF0001", "CLOSED"))
    assert world.receiver.wechat_seen[-1].event_type == "REFUND.CLOSED"
    assert "success_time" not in world.receiver.wechat_seen[-1].resource
    world.wechatpay.refund("FUEL0001", "RF0002", 30000, 30000)  # closed one freed the amount
    world.run(world.sims.wechatpay.settle_refund("RF0002", "ABNORMAL"))
    assert world.receiver.wechat_seen[-1].event_type == "REFUND.ABNORMAL"


def test_gateway_errors_are_provider_errors_with_retryability(world):
    with pytest.raises(ProviderError) as missing:
        world.wechatpay.query_order("NOSUCHORDER")
    assert (missing.value.code, missing.value.status, missing.value.retryable) == (
        "ORDER_NOT_EXIST",
        404,
        False,
    )
    world.sims.wechatpay.fail_next(500, "SYSTEM_ERROR")
    with pytest.raises(ProviderError) as busy:
        order(world)
    assert (busy.value.code, busy.value.retryable) == ("SYSTEM_ERROR", True)
    world.sims.wechatpay.fail_next(429, "FREQUENCY_LIMITED")
    with pytest.raises(ProviderError) as limited:
        order(world)
    assert limited.value.retryable
    assert order(world).startswith("wx")  # the failures were one-shot


def test_timeouts_are_retryable(world):
    def hang(request):
        raise httpx.ReadTimeout("slow", request=request)

    client = world.wechatpay_client(httpx.Client(transport=httpx.MockTransport(hang)))
    with pytest.raises(ProviderError) as error:
        client.query_order("FUEL0001")
    assert (error.value.code, error.value.retryable) == ("timeout", True)


def test_the_simulator_refuses_a_request_signed_with_another_key(world):
    forged = world.wechatpay_client(merchant_private_key_pem=world.keys.alipay_app.private_pem)
    with pytest.raises(ProviderError) as error:
        forged.jsapi_prepay("FUEL0001", "x", 100, "o-user-1")
    assert (error.value.code, error.value.status) == ("SIGN_ERROR", 401)
    assert "FUEL0001" not in world.sims.wechatpay.orders.orders


def test_the_simulator_refuses_a_stale_or_replayed_elsewhere_request(world):
    key = load_private_key(world.keys.merchant.private_pem)
    sim = world.sims.wechatpay
    mchid = world.wechatpay.config.mchid

    def authorization(path, timestamp):
        return build_authorization(
            key,
            mchid=mchid,
            serial=world.keys.merchant_serial,
            method="GET",
            path_with_query=path,
            body=b"",
            timestamp=timestamp,
        )

    path = "/wechatpay/v3/pay/transactions/out-trade-no/FUEL0001?mchid=" + mchid
    sim.verify_request("GET", path, authorization(path, int(world.clock()) - 299), b"")
    with pytest.raises(SimError, match="timestamp"):
        sim.verify_request("GET", path, authorization(path, int(world.clock()) - 300), b"")
    with pytest.raises(SimError, match="signature"):  # signed for another path
        sim.verify_request("GET", path + "2", authorization(path, int(world.clock())), b"")


def test_responses_are_verified_with_the_key_the_serial_names(world):
    order(world)
    world.sims.wechatpay.use_platform_key(world.keys.wechat_platform_serial)
    assert world.wechatpay.query_order("FUEL0001")["trade_state"] == "NOTPAY"
    only_new_key = world.wechatpay_client(
        platform_public_keys={world.keys.wechat_pub_key_id: world.keys.wechat_pubkey.public_pem}
    )
    with pytest.raises(ProviderError) as error:
        only_new_key.query_order("FUEL0001")
    assert (error.value.code, error.value.message) == ("bad_response_signature", "unknown_serial")


def test_a_response_signed_by_the_wrong_key_is_refused(world):
    order(world)
    swapped = {world.keys.wechat_pub_key_id: world.keys.wechat_platform.public_pem}
    client = world.wechatpay_client(platform_public_keys=swapped)
    with pytest.raises(ProviderError) as error:
        client.query_order("FUEL0001")
    assert (error.value.code, error.value.message) == ("bad_response_signature", "bad_signature")


def test_amounts_must_be_integer_fen(world):
    with pytest.raises(ValueError):
        world.wechatpay.jsapi_prepay("FUEL0001", "x", 300.0, "o-user-1")

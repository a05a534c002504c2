"""Merchant transfer payouts (user-confirmation mode) against the simulator."""

import pytest

from providers.errors import ProviderError


def create(world, no="PAYOUT0001", fen=1500, **kwargs):
    return world.wechatpay.create_transfer(no, "o-promoter-1", fen, "推广佣金", **kwargs)


def test_a_new_bill_waits_for_the_user_with_a_package(world):
    bill = create(world)
    assert bill["state"] == "WAIT_USER_CONFIRM"
    assert bill["package_info"]
    queried = world.wechatpay.query_transfer("PAYOUT0001")
    assert (queried["state"], queried["transfer_amount"], queried["openid"]) == (
        "WAIT_USER_CONFIRM",
        1500,
        "o-promoter-1",
    )


def test_retrying_with_the_same_number_is_the_same_bill(world):
    world.sims.wechatpay.fail_next(500, "SYSTEM_ERROR")
    with pytest.raises(ProviderError) as error:
        create(world)
    assert error.value.retryable
    first = create(world)
    again = create(world)
    assert again["transfer_bill_no"] == first["transfer_bill_no"]
    assert len(world.sims.wechatpay.transfers.transfers) == 1
    with pytest.raises(ProviderError) as reused:
        create(world, fen=1600)
    assert reused.value.code == "INVALID_REQUEST"


def test_success_after_the_user_confirms_is_notified(world):
    create(world)
    assert world.sims.wechatpay.confirm_transfer("PAYOUT0001") == "TRANSFERING"
    [delivery] = world.run(world.sims.wechatpay.finish_transfer("PAYOUT0001"))
    assert delivery.accepted
    [seen] = world.receiver.wechat_seen
    assert seen.event_type == "MCHTRANSFER.BILL.FINISHED"
    assert seen.raw["resource"]["original_type"] == "mch_payment"
    assert (seen.resource["state"], seen.resource["transfer_amount"]) == ("SUCCESS", 1500)
    assert seen.merchant_id == world.wechatpay.config.mchid
    assert world.wechatpay.query_transfer("PAYOUT0001")["state"] == "SUCCESS"


def test_an_unconfirmed_bill_fails_overdue(world):
    create(world)
    world.run(world.sims.wechatpay.finish_transfer("PAYOUT0001", success=False))
    resource = world.receiver.wechat_seen[-1].resource
    assert (resource["state"], resource["fail_reason"]) == ("FAIL", "OVERDUE_CLOSE")
    assert world.wechatpay.query_transfer("PAYOUT0001")["state"] == "FAIL"


def test_cancel_before_confirmation_then_final_notification(world):
    create(world)
    cancelling = world.wechatpay.cancel_transfer("PAYOUT0001")
    assert cancelling["state"] == "CANCELING"
    assert world.wechatpay.query_transfer("PAYOUT0001")["state"] == "CANCELLED"
    assert world.receiver.wechat_seen[-1].resource["state"] == "CANCELLED"


def test_cancel_after_confirmation_is_refused(world):
    create(world)
    world.sims.wechatpay.confirm_transfer("PAYOUT0001")
    with pytest.raises(ProviderError) as error:
        world.wechatpay.cancel_transfer("PAYOUT0001")
    assert error.value.code == "INVALID_REQUEST"


def test_real_name_is_required_from_2000_yuan_and_travels_encrypted(world):
    with pytest.raises(ProviderError) as error:
        create(world, fen=200_000)
    assert error.value.code == "PARAM_ERROR"
    create(world, fen=200_000, user_name="张三")
    assert world.sims.wechatpay.transfers.get("PAYOUT0001").user_name == "张三"


@pytest.mark.parametrize(
    "no, remark", [("PAYOUT-0001", "ok"), ("P" * 33, "ok"), ("PAYOUT0001", "字" * 33)]
)
def test_invalid_bill_numbers_and_remarks_are_refused(world, no, remark):
    with pytest.raises(ProviderError) as error:
        world.wechatpay.create_transfer(no, "o-promoter-1", 100, remark)
    assert error.value.code == "PARAM_ERROR"


def test_unknown_bill_is_not_found(world):
    with pytest.raises(ProviderError) as error:
        world.wechatpay.query_transfer("NOPE")
    assert (error.value.code, error.value.status) == ("NOT_FOUND", 404)

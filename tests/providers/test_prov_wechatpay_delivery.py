"""How the simulator delivers: duplicates, reordering, holds, delays, forged or old
signatures, amount mismatches, retries, and the replies it records."""

import json


def paid_orders(world, *numbers, fen=30000):
    for no in numbers:
        world.wechatpay.jsapi_prepay(no, "加油", fen, "o-user-1")


def test_duplicates_carry_one_notification_id_and_each_is_recorded(world):
    paid_orders(world, "FUEL0001")
    deliveries = world.run(world.sims.wechatpay.pay("FUEL0001", times=3))
    assert [d.status for d in deliveries] == [204, 204, 204]
    assert all(d.accepted for d in deliveries)
    assert len({d.notification_id for d in deliveries}) == 1
    assert len({d.headers["Wechatpay-Nonce"] for d in deliveries}) == 3  # signed anew
    assert [n.id for n in world.receiver.wechat_seen] == [deliveries[0].notification_id] * 3


def test_held_notifications_are_released_in_another_order(world):
    paid_orders(world, "FUEL0001", "FUEL0002", "FUEL0003", "FUEL0004")
    world.sims.wechatpay.configure_delivery(hold=True)
    for no in ("FUEL0001", "FUEL0002", "FUEL0003", "FUEL0004"):
        assert world.run(world.sims.wechatpay.pay(no)) == []
    assert world.receiver.wechat_seen == []
    world.sims.wechatpay.configure_delivery(hold=False)
    released = world.run(world.sims.wechatpay.release(shuffle=True, seed=3))
    order = [n.resource["out_trade_no"] for n in world.receiver.wechat_seen]
    assert sorted(order) == ["FUEL0001", "FUEL0002", "FUEL0003", "FUEL0004"]
    assert order != sorted(order)
    assert len(released) == 4 and world.sims.wechatpay.notifier.pending == []


def test_bad_signature_is_refused_by_our_endpoint_and_recorded_as_failed(world):
    paid_orders(world, "FUEL0001")
    [delivery] = world.run(world.sims.wechatpay.pay("FUEL0001", bad_signature=True))
    assert (delivery.status, delivery.accepted) == (401, False)
    assert json.loads(delivery.reply) == {"code": "FAIL", "message": "bad_signature"}
    assert world.receiver.rejected == ["bad_signature"]
    # WeChat retries what was not accepted; the retry is signed properly.
    [retry] = world.run(world.sims.wechatpay.retry_failed())
    assert retry.accepted and retry.notification_id == delivery.notification_id
    assert world.run(world.sims.wechatpay.retry_failed()) == []


def test_old_timestamp_is_refused(world):
    paid_orders(world, "FUEL0001")
    [delivery] = world.run(world.sims.wechatpay.pay("FUEL0001", old_timestamp=True))
    assert not delivery.accepted
    assert world.receiver.rejected == ["stale_timestamp"]


def test_amount_override_reaches_us_for_mismatch_checks_but_not_the_order(world):
    paid_orders(world, "FUEL0001")
    world.run(world.sims.wechatpay.pay("FUEL0001", amount_override=1))
    assert world.receiver.wechat_seen[0].resource["amount"]["total"] == 1
    assert world.wechatpay.query_order("FUEL0001")["amount"]["total"] == 30000


def test_delay_is_waited_before_delivery(world):
    paid_orders(world, "FUEL0001")
    [delivery] = world.run(world.sims.wechatpay.pay("FUEL0001", delay_s=0.01))
    assert delivery.accepted


def test_unreachable_endpoint_is_recorded_as_an_error(world):
    async def refuse(url, headers, body):
        raise ConnectionError("connection refused")

    world.sims.wechatpay.notifier.deliver = refuse
    paid_orders(world, "FUEL0001")
    [delivery] = world.run(world.sims.wechatpay.pay("FUEL0001"))
    assert delivery.status is None and not delivery.accepted
    assert "connection refused" in delivery.error


def test_controls_over_http(world):
    paid_orders(world, "FUEL0001")
    reply = world.http.post("/wechatpay/sim/orders/FUEL0001/pay", json={"times": 2})
    assert reply.status_code == 200
    assert [d["status"] for d in reply.json()["deliveries"]] == [204, 204]
    assert world.http.get("/wechatpay/sim/deliveries").json()["deliveries"][1]["seq"] == 2
    assert world.http.post("/wechatpay/sim/orders/FUEL0001/pay").status_code == 400
    bad = world.http.post("/wechatpay/sim/delivery", json={"times": 9})
    assert bad.status_code == 400
    assert (
        world.http.post("/wechatpay/sim/delivery", json={"shuffle": True}).json()["shuffle"] is True
    )
    assert world.sims.wechatpay.notifier.policy.shuffle
    world.http.post("/wechatpay/sim/fail-next", json={"status": 503, "code": "SYSTEM_ERROR"})
    assert world.sims.wechatpay.take_failure().status == 503

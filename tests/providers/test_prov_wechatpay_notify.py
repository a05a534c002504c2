"""WeChat Pay notification verification: what must pass, and every way it must fail."""

import base64
import json

import pytest

from providers.errors import NotificationRejected

RESOURCE = {
    "out_trade_no": "FUEL0001",
    "trade_state": "SUCCESS",
    "amount": {"total": 30000, "payer_total": 30000, "currency": "CNY"},
}


def signed(world, resource=RESOURCE, **kwargs):
    sim = world.sims.wechatpay
    _id, body = sim.build_notification("TRANSACTION.SUCCESS", "transaction", resource, **kwargs)
    return sim.sign(body), body


def rejection(world, headers, body, client=None):
    with pytest.raises(NotificationRejected) as error:
        (client or world.wechatpay).verify_notification(headers, body)
    return error.value.code


def test_a_genuine_notification_is_verified_and_decrypted(world):
    headers, body = signed(world)
    seen = world.wechatpay.verify_notification(headers, body)
    assert seen.event_type == "TRANSACTION.SUCCESS"
    assert seen.resource == RESOURCE
    assert seen.id == json.loads(body)["id"]
    assert seen.raw["resource"]["algorithm"] == "AEAD_AES_256_GCM"


def test_header_names_are_case_insensitive(world):
    headers, body = signed(world)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert world.wechatpay.verify_notification(lowered, body).resource == RESOURCE


def test_empty_associated_data_is_allowed(world):
    headers, body = signed(world, associated_data="")
    assert json.loads(body)["resource"]["associated_data"] == ""
    assert world.wechatpay.verify_notification(headers, body).resource == RESOURCE


def test_forged_signature_is_rejected(world):
    headers, body = signed(world)
    other_headers, _ = signed(world, resource={"forged": True})
    forged = headers | {"Wechatpay-Signature": other_headers["Wechatpay-Signature"]}
    assert rejection(world, forged, body) == "bad_signature"


def test_signature_test_probe_never_passes(world):
    headers, body = signed(world)
    probe = headers | {
        "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    }
    assert rejection(world, probe, body) == "signature_test_probe"


def test_unknown_serial_is_rejected(world):
    headers, body = signed(world)
    assert rejection(world, headers | {"Wechatpay-Serial": "PUB_KEY_ID_0000"}, body) == (
        "unknown_serial"
    )


def test_the_key_is_chosen_by_serial_during_a_key_switch(world):
    world.sims.wechatpay.use_platform_key(world.keys.wechat_platform_serial)
    headers, body = signed(world)
    assert headers["Wechatpay-Serial"] == world.keys.wechat_platform_serial
    assert world.wechatpay.verify_notification(headers, body).resource == RESOURCE
    # The certificate key's signature under the new key's id does not verify.
    relabelled = headers | {"Wechatpay-Serial": world.keys.wechat_pub_key_id}
    assert rejection(world, relabelled, body) == "bad_signature"


def test_timestamp_five_minutes_away_is_stale(world):
    sim = world.sims.wechatpay
    _id, body = sim.build_notification("TRANSACTION.SUCCESS", "transaction", RESOURCE)
    now = int(world.clock())
    assert world.wechatpay.verify_notification(sim.sign(body, timestamp=now - 299), body)
    assert rejection(world, sim.sign(body, timestamp=now - 300), body) == "stale_timestamp"
    assert rejection(world, sim.sign(body, timestamp=now + 300), body) == "stale_timestamp"


@pytest.mark.parametrize(
    "name", ["Wechatpay-Serial", "Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce"]
)
def test_empty_or_absent_header_is_rejected(world, name):
    headers, body = signed(world)
    assert rejection(world, headers | {name: ""}, body) == "missing_header"
    del headers[name]
    assert rejection(world, headers, body) == "missing_header"


def test_tampered_ciphertext_is_rejected_even_when_signed(world):
    _headers, body = signed(world)
    envelope = json.loads(body)
    sealed = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
    sealed[0] ^= 1
    envelope["resource"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    body = json.dumps(envelope).encode()
    # Signed by the platform (say, a bug upstream): the AEAD tag still catches it.
    assert rejection(world, world.sims.wechatpay.sign(body), body) == "bad_resource"


def test_wrong_apiv3_key_cannot_decrypt(world):
    headers, body = signed(world)
    client = world.wechatpay_client(apiv3_key=b"0" * 32)
    assert rejection(world, headers, body, client) == "bad_resource"


def test_one_changed_byte_of_the_body_breaks_the_signature(world):
    headers, body = signed(world)
    # Even a change that leaves the JSON meaning intact: verification is over raw bytes.
    assert rejection(world, headers, body.replace(b'"id": ', b'"id":  ', 1)) == "bad_signature"
    position = body.index(b"TRANSACTION")
    tampered = body[:position] + b"X" + body[position + 1 :]
    assert rejection(world, headers, tampered) == "bad_signature"

"""SMS (HMAC-signed) and text-to-speech clients against their simulators."""

import io
import wave

import httpx
import pytest

from providers.errors import ProviderError
from providers.sms import SmsClient
from providers.tts import TtsClient


def test_sms_is_signed_verified_and_recorded(world):
    message_id = world.sms.send("13800138000", "SMS_CODE", {"code": "123456"})
    [message] = world.sims.sms.messages
    assert (
        message.message_id,
        message.phone,
        message.template_code,
        message.params,
        message.sign_name,
    ) == (message_id, "13800138000", "SMS_CODE", {"code": "123456"}, "油站")
    listed = world.http.get("/sms/sim/messages").json()["messages"]
    assert listed[0]["params"] == {"code": "123456"}


def test_sms_with_a_wrong_secret_is_refused(world):
    client = SmsClient(
        "http://sim.test/sms", "dev-sms-key", "wrong", "油站", world.http, clock=world.clock
    )
    with pytest.raises(ProviderError) as error:
        client.send("13800138000", "SMS_CODE", {"code": "1"})
    assert (error.value.code, error.value.status) == ("SignatureDoesNotMatch", 401)
    assert world.sims.sms.messages == []


def test_a_replayed_sms_request_is_refused(world):
    captured = []

    def capture(request):
        captured.append(request)
        return httpx.Response(200, json={"code": "OK", "message_id": "x"})

    SmsClient(
        "http://sim.test/sms",
        "dev-sms-key",
        "dev-sms-secret",
        "油站",
        httpx.Client(transport=httpx.MockTransport(capture)),
        clock=world.clock,
    ).send("13800138000", "SMS_CODE", {"code": "1"})
    original = captured[0]
    first = world.http.post(str(original.url), content=original.content, headers=original.headers)
    replay = world.http.post(str(original.url), content=original.content, headers=original.headers)
    assert first.status_code == 200
    assert (replay.status_code, replay.json()["code"]) == (401, "SignatureNonceUsed")
    assert len(world.sims.sms.messages) == 1


def test_sms_provider_outage_is_retryable(world):
    world.sims.sms.fail_next()
    with pytest.raises(ProviderError) as error:
        world.sms.send("13800138000", "SMS_CODE", {"code": "1"})
    assert (error.value.status, error.value.retryable) == (503, True)
    with pytest.raises(ProviderError) as bad:
        world.sms.send("not-a-phone", "SMS_CODE", {})
    assert (bad.value.code, bad.value.retryable) == ("InvalidParameter", False)


def test_tts_returns_a_valid_wav_and_records_the_text(world):
    audio = world.tts.synthesize("微信收款三百元", voice="xiaoyun")
    with wave.open(io.BytesIO(audio)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == int(8000 * (0.1 + 0.02 * 7))
    assert [(t.text, t.voice) for t in world.sims.tts.texts] == [("微信收款三百元", "xiaoyun")]
    assert world.http.get("/tts/sim/texts").json()["texts"][0]["text"] == "微信收款三百元"


def test_tts_requires_the_key(world):
    with pytest.raises(ProviderError) as error:
        TtsClient("http://sim.test/tts", "wrong", world.http).synthesize("hello")
    assert error.value.status == 401
    with pytest.raises(ValueError):
        world.tts.synthesize("   ")

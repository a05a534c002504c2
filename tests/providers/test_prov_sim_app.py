"""The combined simulator app and its uvicorn factory."""

from providers.keys import DevKeys
from providers.sim.app import create_app
from providers.sim.asgi_client import asgi_http_client
from providers.sim.notifier import http_deliver


def test_index_lists_the_mounted_simulators(world):
    assert world.http.get("/").json()["simulators"] == {
        "wechatpay": "/wechatpay",
        "alipay": "/alipay",
        "wechat_login": "/wechat",
        "sms": "/sms",
        "tts": "/tts",
    }


def test_default_delivery_posts_over_http(keys):
    from providers.sim.app import build_simulators

    sims = build_simulators(
        keys, merchant_id="1", appid="wx", alipay_app_id="2021", login_secret="s"
    )
    assert sims.wechatpay.notifier.deliver is http_deliver
    assert sims.alipay.notifier.deliver is http_deliver


def test_factory_persists_keys_and_serves(tmp_path, monkeypatch):
    monkeypatch.setenv("SIM_KEYS_DIR", str(tmp_path / "keys"))
    app = create_app()
    first = DevKeys.load(tmp_path / "keys")
    create_app()
    assert DevKeys.load(tmp_path / "keys") == first
    with asgi_http_client(app) as http:
        assert http.get("/").status_code == 200
        # An unsigned call to the WeChat Pay API is refused, as the real one would.
        refused = http.get("/wechatpay/v3/pay/transactions/out-trade-no/X?mchid=1900000001")
        assert (refused.status_code, refused.json()["code"]) == (401, "SIGN_ERROR")
        assert "Wechatpay-Signature" in refused.headers

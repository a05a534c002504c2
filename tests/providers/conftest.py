"""One in-process world per test: every simulator behind one ASGI app, our clients pointed
at it through a synchronous in-process transport, and a receiver app standing in for our
notification endpoints (it verifies with the real clients and answers as our server must)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from providers.alipay import AlipayClient, AlipayConfig, AlipayNotification
from providers.errors import NotificationRejected
from providers.keys import DevKeys
from providers.sim.app import Simulators, build_simulators
from providers.sim.asgi_client import SyncASGITransport
from providers.sim.clock import BEIJING, ManualClock
from providers.sim.notifier import asgi_deliver
from providers.sms import SmsClient
from providers.tts import TtsClient
from providers.wechat_login import WeChatLoginClient
from providers.wechatpay import WeChatPayClient, WeChatPayConfig
from providers.wechatpay_notify import WeChatNotification, failure_reply, success_reply

T = TypeVar("T")
MCHID = "1900000109"
APPID = "wx8888888888888888"
ALIPAY_APP_ID = "2021000000000042"
LOGIN_SECRET = "login-secret-for-tests"
BASE = "http://sim.test"
START = datetime(2026, 3, 10, 11, 0, 0, tzinfo=BEIJING).timestamp()
TODAY = "2026-03-10"


@pytest.fixture(scope="session")
def keys() -> DevKeys:
    return DevKeys.generate()  # RSA generation is slow: once per session


@dataclass
class Receiver:
    """Our server's notification endpoints, reduced to verify, record, reply."""

    wechatpay: WeChatPayClient | None = None
    alipay: AlipayClient | None = None
    wechat_seen: list[WeChatNotification] = field(default_factory=list)
    alipay_seen: list[AlipayNotification] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def wechat(request: Request) -> Response:
            assert self.wechatpay is not None
            try:
                seen = self.wechatpay.verify_notification(request.headers, await request.body())
            except NotificationRejected as exc:
                self.rejected.append(exc.code)
                status, body = failure_reply(exc.code, 401)
                return Response(body, status, media_type="application/json")
            self.wechat_seen.append(seen)
            return Response(status_code=success_reply()[0])

        async def alipay(request: Request) -> Response:
            assert self.alipay is not None
            form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            try:
                self.alipay_seen.append(self.alipay.verify_notification(form))
            except NotificationRejected as exc:
                self.rejected.append(exc.code)
                return PlainTextResponse("fail")
            return PlainTextResponse("success")

        return Starlette(
            routes=[
                Route("/notify/wechatpay", wechat, methods=["POST"]),
                Route("/notify/alipay", alipay, methods=["POST"]),
            ]
        )


@dataclass
class World:
    keys: DevKeys
    clock: ManualClock
    sims: Simulators
    transport: SyncASGITransport
    http: httpx.Client
    receiver: Receiver
    wechatpay: WeChatPayClient
    alipay: AlipayClient
    login: WeChatLoginClient
    sms: SmsClient
    tts: TtsClient

    today: str = TODAY  # the Beijing date of the clock's start

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a simulator control (e.g. `sims.wechatpay.pay(...)`) on the app's loop."""
        return self.transport.run(coroutine)

    def wechatpay_client(
        self,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] | None = None,
        **changes: Any,
    ) -> WeChatPayClient:
        """Another WeChat Pay client, its configuration changed (a wrong key, say)."""
        return WeChatPayClient(
            wechatpay_config(self.keys, **changes), http or self.http, clock=clock or self.clock
        )

    def alipay_client(self, **changes: Any) -> AlipayClient:
        return AlipayClient(alipay_config(self.keys, **changes), self.http, clock=self.clock)


def wechatpay_config(keys: DevKeys, **changes: Any) -> WeChatPayConfig:
    values: dict[str, Any] = {
        "mchid": MCHID,
        "appid": APPID,
        "merchant_serial": keys.merchant_serial,
        "merchant_private_key_pem": keys.merchant.private_pem,
        "apiv3_key": keys.apiv3_key,
        "platform_public_keys": keys.wechat_platform_public_keys(),
        "base_url": f"{BASE}/wechatpay",
        "notify_url": "https://api.test/notify/wechatpay",
    }
    return WeChatPayConfig(**(values | changes))


def alipay_config(keys: DevKeys, **changes: Any) -> AlipayConfig:
    values: dict[str, Any] = {
        "app_id": ALIPAY_APP_ID,
        "app_private_key_pem": keys.alipay_app.private_pem,
        "alipay_public_key_pem": keys.alipay_platform.public_pem,
        "gateway_url": f"{BASE}/alipay/gateway.do",
        "notify_url": "https://api.test/notify/alipay",
    }
    return AlipayConfig(**(values | changes))


@pytest.fixture
def world(keys: DevKeys) -> Iterator[World]:
    clock = ManualClock(START)
    receiver = Receiver()
    sims = build_simulators(
        keys,
        merchant_id=MCHID,
        appid=APPID,
        alipay_app_id=ALIPAY_APP_ID,
        login_secret=LOGIN_SECRET,
        deliver=asgi_deliver(receiver.app()),
        clock=clock,
        tts_api_key="tts-key",
    )
    transport = SyncASGITransport(sims.asgi)
    http = httpx.Client(transport=transport, base_url=BASE)
    receiver.wechatpay = WeChatPayClient(wechatpay_config(keys), http, clock=clock)
    receiver.alipay = AlipayClient(alipay_config(keys), http, clock=clock)
    yield World(
        keys=keys,
        clock=clock,
        sims=sims,
        transport=transport,
        http=http,
        receiver=receiver,
        wechatpay=receiver.wechatpay,
        alipay=receiver.alipay,
        login=WeChatLoginClient(APPID, LOGIN_SECRET, f"{BASE}/wechat", http, clock=clock),
        sms=SmsClient(f"{BASE}/sms", "dev-sms-key", "dev-sms-secret", "油站", http, clock=clock),
        tts=TtsClient(f"{BASE}/tts", "tts-key", http),
    )
    http.close()

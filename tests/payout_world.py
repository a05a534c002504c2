"""The WeChat Pay simulator wired to our API and to a worker context, in process: what the
payout and mall tests pay and get paid through (see `open_world`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import httpx
from fastapi.testclient import TestClient

from api.auth import MEMBER_SCOPE, issue_access_token
from api.main import create_app
from api.permissions import SUPER_ADMIN_SCOPE
from infra.bootstrap import Core
from providers.keys import DevKeys
from providers.sim.app import Simulators, build_simulators
from providers.sim.asgi_client import SyncASGITransport
from providers.sim.notifier import asgi_deliver
from providers.wechatpay import WeChatPayClient, WeChatPayConfig
from workers.context import WorkerContext

MCHID, APPID = "1900000109", "wx8888888888888888"
BASE = "http://sim.test"
NOTIFY = "https://api.test/v1/payments/wechat/notify"


@dataclass
class World:
    core: Core
    sims: Simulators
    transport: SyncASGITransport
    wechat: WeChatPayClient
    api: TestClient
    ctx: WorkerContext

    def run(self, coroutine: Any) -> Any:
        return self.transport.run(coroutine)

    def auth(self, subject: UUID | str, role: str, scope: Sequence[str] = ()) -> dict[str, str]:
        return bearer(self.core, subject, role, scope)


def bearer(core: Core, subject: UUID | str, role: str, scope: Sequence[str] = ()) -> dict:
    """Headers with a minted access token; members and (super-)admins get their usual scope."""
    scope = scope or {"member": MEMBER_SCOPE, "admin": SUPER_ADMIN_SCOPE}.get(role, ())
    token, _ = issue_access_token(core.settings, subject, role, scope)
    return {"Authorization": f"Bearer {token}"}


@lru_cache(maxsize=1)
def dev_keys() -> DevKeys:
    return DevKeys.generate()


def open_world(core: Core) -> Iterator[World]:
    """For a test module's own `world` fixture: `yield from open_world(core)`."""
    keys = dev_keys()
    target: list[Any] = []

    async def deliver(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        return await target[0](url, headers, body)

    sims = build_simulators(
        keys,
        merchant_id=MCHID,
        appid=APPID,
        alipay_app_id="2021000000000042",
        login_secret="s",
        deliver=deliver,
    )
    transport = SyncASGITransport(sims.asgi)
    http = httpx.Client(transport=transport, base_url=BASE)
    wechat = WeChatPayClient(
        WeChatPayConfig(
            mchid=MCHID,
            appid=APPID,
            merchant_serial=keys.merchant_serial,
            merchant_private_key_pem=keys.merchant.private_pem,
            apiv3_key=keys.apiv3_key,
            platform_public_keys=keys.wechat_platform_public_keys(),
            base_url=f"{BASE}/wechatpay",
            notify_url=NOTIFY,
        ),
        http,
    )
    app = create_app(core=core, providers=SimpleNamespace(wechat_pay=wechat))  # type: ignore[arg-type]
    ctx = WorkerContext(
        core=core,
        wechat_pay=wechat,
        alipay=None,
        tts=None,  # type: ignore[arg-type]
        redis=None,
    )
    with TestClient(app) as api:
        target.append(asgi_deliver(app))
        yield World(core, sims, transport, wechat, api, ctx)
    http.close()
    transport.close()

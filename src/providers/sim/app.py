"""All simulators on one ASGI app, so one uvicorn process serves them.

    uvicorn --factory providers.sim.app:create_app --port 8900

Prefixes: /wechatpay, /alipay (gateway at /alipay/gateway.do), /wechat, /sms, /tts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from providers.keys import DevKeys
from providers.sim.alipay_sim import AlipaySim
from providers.sim.notifier import Deliver
from providers.sim.sms_sim import SmsSim
from providers.sim.tts_sim import TtsSim
from providers.sim.wechat_login_sim import WeChatLoginSim
from providers.sim.wechatpay_sim import WeChatPaySim

PREFIXES = {
    "wechatpay": "/wechatpay",
    "alipay": "/alipay",
    "wechat_login": "/wechat",
    "sms": "/sms",
    "tts": "/tts",
}


@dataclass(frozen=True)
class Simulators:
    asgi: Starlette
    wechatpay: WeChatPaySim
    alipay: AlipaySim
    wechat_login: WeChatLoginSim
    sms: SmsSim
    tts: TtsSim


def build_simulators(
    keys: DevKeys,
    *,
    merchant_id: str,
    appid: str,
    alipay_app_id: str,
    login_secret: str,
    deliver: Deliver | None = None,
    clock: Callable[[], float] = time.time,
    sms_access_key_id: str = "dev-sms-key",
    sms_access_key_secret: str = "dev-sms-secret",
    tts_api_key: str | None = None,
) -> Simulators:
    wechatpay = WeChatPaySim.from_keys(
        keys, mchid=merchant_id, appid=appid, deliver=deliver, clock=clock
    )
    alipay = AlipaySim.from_keys(keys, app_id=alipay_app_id, deliver=deliver, clock=clock)
    login = WeChatLoginSim(appid=appid, secret=login_secret, clock=clock)
    sms = SmsSim(credentials={sms_access_key_id: sms_access_key_secret}, clock=clock)
    tts = TtsSim(api_key=tts_api_key)

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"simulators": PREFIXES})

    asgi = Starlette(
        routes=[
            Route("/", index),
            Mount(PREFIXES["wechatpay"], app=wechatpay.app),
            Mount(PREFIXES["alipay"], app=alipay.app),
            Mount(PREFIXES["wechat_login"], app=login.app),
            Mount(PREFIXES["sms"], app=sms.app),
            Mount(PREFIXES["tts"], app=tts.app),
        ]
    )
    return Simulators(asgi, wechatpay, alipay, login, sms, tts)


def create_app() -> Starlette:
    """uvicorn factory for `make run`: keys persist under SIM_KEYS_DIR (first run creates)."""
    keys = DevKeys.load_or_create(os.environ.get("SIM_KEYS_DIR", ".data/sim-keys"))
    return build_simulators(
        keys,
        merchant_id=os.environ.get("SIM_WECHATPAY_MCHID", "1900000001"),
        appid=os.environ.get("SIM_WECHAT_APPID", "wx0000000000000001"),
        alipay_app_id=os.environ.get("SIM_ALIPAY_APP_ID", "2021000000000001"),
        login_secret=os.environ.get("SIM_WECHAT_SECRET", "dev-wechat-secret"),
        sms_access_key_id=os.environ.get("SIM_SMS_KEY_ID", "dev-sms-key"),
        sms_access_key_secret=os.environ.get("SIM_SMS_KEY_SECRET", "dev-sms-secret"),
        tts_api_key=os.environ.get("SIM_TTS_API_KEY") or None,
    ).asgi

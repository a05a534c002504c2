"""The provider clients the API calls, built from settings.

`make run` and production build them with a real HTTP client against the base URLs in
settings (the simulators on settings.simulator_port, or the real gateways); tests hand
`create_app(providers=...)` clients whose HTTP client is bound in-process to a simulator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request

from infra.settings import Settings, keys_dir
from providers.alipay import AlipayClient, AlipayConfig
from providers.keys import DevKeys
from providers.sms import SmsClient
from providers.transport import new_http_client
from providers.tts import TtsClient
from providers.wechat_login import WeChatLoginClient
from providers.wechatpay import WeChatPayClient, WeChatPayConfig

# WeChat wants the app secret in the query string, and httpx logs every URL at INFO.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class ProviderClients:
    wechat_login: WeChatLoginClient
    sms: SmsClient
    http: httpx.Client
    wechat_pay: WeChatPayClient | None = None
    alipay: AlipayClient | None = None
    tts: TtsClient | None = None

    def close(self) -> None:
        self.http.close()


def payment_clients(
    settings: Settings, http: httpx.Client, keys: DevKeys
) -> tuple[WeChatPayClient, AlipayClient]:
    """WeChat Pay and Alipay clients with the merchant's keys and the providers' public keys."""
    notify = settings.public_base_url.rstrip("/") + "/v1/payments"
    wechat_pay = WeChatPayClient(
        WeChatPayConfig(
            mchid=settings.wechat_pay_mchid,
            appid=settings.wechat_appid,
            merchant_serial=keys.merchant_serial,
            merchant_private_key_pem=keys.merchant.private_pem,
            apiv3_key=keys.apiv3_key,
            platform_public_keys=keys.wechat_platform_public_keys(),
            base_url=settings.wechat_pay_base_url,
            notify_url=notify + "/wechat/notify",
        ),
        http,
    )
    alipay = AlipayClient(
        AlipayConfig(
            app_id=settings.alipay_app_id,
            app_private_key_pem=keys.alipay_app.private_pem,
            alipay_public_key_pem=keys.alipay_platform.public_pem,
            gateway_url=settings.alipay_gateway_url,
            notify_url=notify + "/alipay/notify",
        ),
        http,
    )
    return wechat_pay, alipay


def build_provider_clients(
    settings: Settings, http: httpx.Client | None = None, keys: DevKeys | None = None
) -> ProviderClients:
    """`keys`: the merchant and provider keys; by default loaded from the keys directory
    (created for the simulators on a development machine's first start)."""
    http = http or new_http_client()
    keys = keys or DevKeys.load_or_create(keys_dir(settings))
    wechat_pay, alipay = payment_clients(settings, http, keys)
    return ProviderClients(
        wechat_pay=wechat_pay,
        alipay=alipay,
        tts=TtsClient(settings.tts_base_url, settings.tts_api_key.get_secret_value() or None, http),
        wechat_login=WeChatLoginClient(
            settings.wechat_appid,
            settings.wechat_app_secret.get_secret_value(),
            settings.wechat_api_base_url,
            http,
        ),
        sms=SmsClient(
            settings.sms_base_url,
            settings.sms_access_key_id,
            settings.sms_access_key_secret.get_secret_value(),
            settings.sms_sign_name,
            http,
        ),
        http=http,
    )


def providers_of(request: Request) -> ProviderClients:
    return request.app.state.providers  # type: ignore[no-any-return]


Providers = Annotated[ProviderClients, Depends(providers_of)]

"""Alipay open-platform client (mini-program sign-in, payments, refunds, statements) on RSA2.

Every request is signed with our app key; every successful response is verified
with Alipay's public key over the raw JSON text before any field is trusted.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from providers.alipay_bill import AlipayBill, AlipayBillRow, parse_trade_bill
from providers.alipay_protocol import (
    NOTIFY_EXCLUDED,
    beijing_time,
    extract_response,
    response_key,
    sign_params,
    verify_params,
)
from providers.amounts import fen_to_yuan, positive_fen, yuan_to_fen
from providers.crypto import rsa_verify
from providers.errors import NotificationRejected, ProviderError
from providers.keys import load_private_key, load_public_key
from providers.transport import new_http_client, send

__all__ = [
    "AlipayBill",
    "AlipayBillRow",
    "AlipayClient",
    "AlipayConfig",
    "AlipayIdentity",
    "AlipayNotification",
    "NotificationRejected",
    "ProviderError",
    "parse_trade_bill",
]

_RETRYABLE_SUB_CODES = {"ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR", "isp.unknow-error"}
_ALIPAY_USER_ID = re.compile(r"^2088\d{12}$")


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    app_private_key_pem: bytes
    alipay_public_key_pem: bytes
    gateway_url: str  # e.g. https://openapi.alipay.com/gateway.do, or the simulator's
    notify_url: str


@dataclass(frozen=True)
class AlipayNotification:
    notify_id: str
    notify_type: str
    trade_status: str  # WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED
    out_trade_no: str
    trade_no: str
    total_fen: int
    refund_fen: int | None  # cumulative refund_fee, present on refund notifications
    out_biz_no: str | None
    params: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class AlipayIdentity:
    """Who signed in: the 2088... user id, and/or the per-app OpenID newer apps receive."""

    user_id: str | None
    open_id: str | None

    @property
    def buyer_id(self) -> str:
        """What identifies the member as a buyer (alipay.trade.create takes either)."""
        return str(self.user_id or self.open_id)


class AlipayClient:
    def __init__(
        self,
        config: AlipayConfig,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._http = http or new_http_client()
        self._clock = clock
        self._key = load_private_key(config.app_private_key_pem)
        self._alipay_key = load_public_key(config.alipay_public_key_pem)

    def oauth_token(self, auth_code: str) -> AlipayIdentity:
        """alipay.system.oauth.token: a my.getAuthCode() code for the user's ids. The access
        token it also returns is not kept (we call no user-info API with it)."""
        result = self._call(
            "alipay.system.oauth.token",
            None,
            extra={"grant_type": "authorization_code", "code": auth_code},
        )
        user_id = str(result.get("user_id") or "") or None
        open_id = str(result.get("open_id") or "") or None
        if user_id is None and open_id is None:
            raise ProviderError("bad_response", "oauth.token named no user", 200, False)
        return AlipayIdentity(user_id=user_id, open_id=open_id)

    def trade_create(self, out_trade_no: str, amount_fen: int, subject: str, buyer_id: str) -> str:
        """alipay.trade.create, the mini-program flow; returns trade_no for my.tradePay."""
        # Older apps know the buyer as a 2088... user id, newer ones by an OpenID.
        buyer_field = "buyer_id" if _ALIPAY_USER_ID.match(buyer_id) else "buyer_open_id"
        biz = {
            "out_trade_no": out_trade_no,
            "total_amount": fen_to_yuan(positive_fen(amount_fen)),
            "subject": subject,
            buyer_field: buyer_id,
            "product_code": "JSAPI_PAY",
        }
        return str(self._call("alipay.trade.create", biz, notify=True)["trade_no"])

    def trade_query(self, out_trade_no: str) -> dict[str, Any]:
        return self._call("alipay.trade.query", {"out_trade_no": out_trade_no})

    def trade_refund(
        self, out_trade_no: str, out_request_no: str, refund_fen: int, reason: str = ""
    ) -> dict[str, Any]:
        """Same out_request_no = same refund: safe to retry after a timeout."""
        biz = {
            "out_trade_no": out_trade_no,
            "out_request_no": out_request_no,
            "refund_amount": fen_to_yuan(positive_fen(refund_fen)),
        }
        if reason:
            biz["refund_reason"] = reason
        return self._call("alipay.trade.refund", biz)

    def refund_query(self, out_trade_no: str, out_request_no: str) -> dict[str, Any]:
        return self._call(
            "alipay.trade.fastpay.refund.query",
            {"out_trade_no": out_trade_no, "out_request_no": out_request_no},
        )

    def bill_download_url(self, bill_date: str) -> str:
        result = self._call(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": bill_date},
        )
        return str(result["bill_download_url"])

    def download_bill(self, url: str) -> bytes:
        """The URL is short-lived (30 s) and unsigned: fetch it right after asking for it."""
        response = send(self._http, "GET", url)
        if response.status_code != 200 or not response.content.startswith(b"PK"):
            raise ProviderError(
                "bill_download_failed",
                response.text[:200],
                response.status_code,
                response.status_code >= 500,
            )
        return response.content

    def verify_notification(self, form: Mapping[str, str]) -> AlipayNotification:
        params = dict(form)
        if not params.get("sign"):
            raise NotificationRejected("missing_sign")
        if params.get("sign_type", "RSA2") != "RSA2" or not verify_params(
            self._alipay_key, params, NOTIFY_EXCLUDED
        ):
            raise NotificationRejected("bad_signature")
        if params.get("app_id") != self.config.app_id:
            raise NotificationRejected("app_id_mismatch", params.get("app_id", ""))
        refund = params.get("refund_fee")
        return AlipayNotification(
            notify_id=params.get("notify_id", ""),
            notify_type=params.get("notify_type", ""),
            trade_status=params.get("trade_status", ""),
            out_trade_no=params.get("out_trade_no", ""),
            trade_no=params.get("trade_no", ""),
            total_fen=yuan_to_fen(params.get("total_amount", "0")),
            refund_fen=yuan_to_fen(refund) if refund else None,
            out_biz_no=params.get("out_biz_no") or None,
            params=params,
        )

    def _call(
        self,
        method: str,
        biz: Mapping[str, Any] | None,
        notify: bool = False,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """`biz` goes in biz_content; `extra` are top-level parameters (oauth.token's)."""
        params = {
            "app_id": self.config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": beijing_time(self._clock()),
            "version": "1.0",
            **(extra or {}),
        }
        if biz is not None:
            params["biz_content"] = json.dumps(biz, ensure_ascii=False, separators=(",", ":"))
        if notify:
            params["notify_url"] = self.config.notify_url
        params["sign"] = sign_params(self._key, params)
        response = send(
            self._http,
            "POST",
            self.config.gateway_url,
            content=urlencode(params).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        )
        if response.status_code >= 500:
            raise ProviderError("server_error", response.text[:200], response.status_code, True)
        return self._result(method, response)

    def _result(self, method: str, response: httpx.Response) -> dict[str, Any]:
        text = response.text
        found_key = "ok"
        try:
            found = extract_response(text, response_key(method))
            if found is None:
                found, found_key = extract_response(text, "error_response"), "error"
            sign = json.loads(text).get("sign")
        except ValueError:
            found, sign = None, None
        if found is None:
            raise ProviderError("bad_response", text[:200], response.status_code, True)
        raw, result = found
        signed = bool(sign) and rsa_verify(self._alipay_key, raw.encode(), str(sign))
        # oauth.token answers success without a code, and its errors under error_response.
        ok_without_code = found_key == "ok" and "code" not in result
        code = str(result.get("code", ""))
        if code == "10000" or ok_without_code:
            if not signed:
                raise ProviderError("bad_response_signature", method, response.status_code)
            return result
        # Errors such as isv.invalid-signature come unsigned; they are only ever errors.
        sub_code = str(result.get("sub_code") or "")
        raise ProviderError(
            sub_code or code or "unknown",
            str(result.get("sub_msg") or result.get("msg") or ""),
            response.status_code,
            code == "20000" or sub_code in _RETRYABLE_SUB_CODES,
        )

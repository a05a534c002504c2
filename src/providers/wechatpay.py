"""WeChat Pay API v3 client: what our server calls to take payments, refund and pay out.

No SDK: every request is signed with the merchant key and every response is
verified against the platform key named by its Wechatpay-Serial header.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from providers.amounts import positive_fen
from providers.crypto import nonce_str, rsa_oaep_encrypt, rsa_sign
from providers.errors import NotificationRejected, ProviderError
from providers.keys import load_private_key, load_public_key
from providers.transport import new_http_client, send
from providers.wechatpay_bill import TradeBill, TradeBillRow, TradeBillSummary, parse_trade_bill
from providers.wechatpay_notify import WeChatNotification
from providers.wechatpay_notify import verify_notification as _verify_notification
from providers.wechatpay_protocol import build_authorization, verify_signed_headers

__all__ = [
    "NotificationRejected",
    "ProviderError",
    "TradeBill",
    "TradeBillRow",
    "TradeBillSummary",
    "WeChatNotification",
    "WeChatPayClient",
    "WeChatPayConfig",
    "parse_trade_bill",
]

# Codes WeChat documents as "try again later" even though they are not 5xx.
_RETRYABLE_CODES = {"SYSTEM_ERROR", "FREQUENCY_LIMITED", "FREQUENCY_LIMIT_EXCEED"}
TRANSFERS = "/v3/fund-app/mch-transfer/transfer-bills"


@dataclass(frozen=True)
class WeChatPayConfig:
    mchid: str
    appid: str
    merchant_serial: str
    merchant_private_key_pem: bytes
    apiv3_key: bytes
    platform_public_keys: Mapping[str, bytes]  # serial or PUB_KEY_ID_... -> public PEM
    base_url: str
    notify_url: str


class WeChatPayClient:
    def __init__(
        self,
        config: WeChatPayConfig,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(config.apiv3_key) != 32:
            raise ValueError("the APIv3 key must be 32 bytes")
        self.config = config
        self._http = http or new_http_client()
        self._clock = clock
        self._key = load_private_key(config.merchant_private_key_pem)
        self._platform_keys = {
            serial: load_public_key(pem) for serial, pem in config.platform_public_keys.items()
        }
        # Prefer the "WeChat Pay public key" for encrypting fields: it replaces certificates.
        self._encrypt_serial = sorted(
            self._platform_keys, key=lambda s: not s.startswith("PUB_KEY_ID_")
        )[0]

    # --- payments -------------------------------------------------------------------------
    def jsapi_prepay(
        self, out_trade_no: str, description: str, amount_fen: int, payer_openid: str
    ) -> str:
        body = {
            "appid": self.config.appid,
            "mchid": self.config.mchid,
            "description": description,
            "out_trade_no": out_trade_no,
            "notify_url": self.config.notify_url,
            "amount": {"total": positive_fen(amount_fen), "currency": "CNY"},
            "payer": {"openid": payer_openid},
        }
        return str(self._call("POST", "/v3/pay/transactions/jsapi", body=body)["prepay_id"])

    def mini_program_pay_params(self, prepay_id: str) -> dict[str, str]:
        """What wx.requestPayment needs; signed with the merchant key, never sent to WeChat."""
        timestamp, nonce, package = str(int(self._clock())), nonce_str(), f"prepay_id={prepay_id}"
        message = f"{self.config.appid}\n{timestamp}\n{nonce}\n{package}\n".encode()
        return {
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": rsa_sign(self._key, message),
        }

    def query_order(self, out_trade_no: str) -> dict[str, Any]:
        return self._call(
            "GET",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}",
            query={"mchid": self.config.mchid},
        )

    def close_order(self, out_trade_no: str) -> None:
        self._call(
            "POST",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no)}/close",
            body={"mchid": self.config.mchid},
        )

    # --- refunds --------------------------------------------------------------------------
    def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str = "",
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "notify_url": self.config.notify_url,
            "amount": {
                "refund": positive_fen(refund_fen),
                "total": positive_fen(total_fen),
                "currency": "CNY",
            },
        }
        if reason:
            body["reason"] = reason
        return self._call("POST", "/v3/refund/domestic/refunds", body=body)

    def query_refund(self, out_refund_no: str) -> dict[str, Any]:
        return self._call("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no)}")

    # --- merchant transfers (payouts) -----------------------------------------------------
    def create_transfer(
        self,
        out_bill_no: str,
        openid: str,
        amount_fen: int,
        remark: str,
        scene_id: str = "1005",
        *,
        user_name: str | None = None,
        user_recv_perception: str = "劳务报酬",
        report_infos: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Create a bill the user confirms in the mini-program (state WAIT_USER_CONFIRM).

        Store out_bill_no before calling; on a retryable error query it and retry with
        the same number (the bill may exist).
        """
        infos = report_infos or (("岗位类型", "推广员"), ("报酬说明", remark))
        body: dict[str, Any] = {
            "appid": self.config.appid,
            "out_bill_no": out_bill_no,
            "transfer_scene_id": scene_id,
            "openid": openid,
            "transfer_amount": positive_fen(amount_fen),
            "transfer_remark": remark,
            "user_recv_perception": user_recv_perception,
            "transfer_scene_report_infos": [{"info_type": t, "info_content": c} for t, c in infos],
            "notify_url": self.config.notify_url,
        }
        headers: dict[str, str] = {}
        if user_name:
            body["user_name"] = rsa_oaep_encrypt(
                self._platform_keys[self._encrypt_serial], user_name
            )
            headers["Wechatpay-Serial"] = self._encrypt_serial
        return self._call("POST", TRANSFERS, body=body, headers=headers)

    def query_transfer(self, out_bill_no: str) -> dict[str, Any]:
        return self._call("GET", f"{TRANSFERS}/out-bill-no/{quote(out_bill_no)}")

    def cancel_transfer(self, out_bill_no: str) -> dict[str, Any]:
        return self._call("POST", f"{TRANSFERS}/out-bill-no/{quote(out_bill_no)}/cancel")

    # --- statements -----------------------------------------------------------------------
    def trade_bill(self, bill_date: str) -> bytes:
        info = self._call(
            "GET", "/v3/bill/tradebill", query={"bill_date": bill_date, "bill_type": "ALL"}
        )
        # The file itself is not signed: the SHA1 from the signed answer is its proof.
        response = self._send("GET", str(info["download_url"]), b"", {})
        if response.status_code != 200:
            raise _error_from(response)
        if hashlib.sha1(response.content).hexdigest().lower() != str(info["hash_value"]).lower():
            raise ProviderError("bill_hash_mismatch", "trade bill SHA1 differs", 200)
        return response.content

    # --- notifications --------------------------------------------------------------------
    def verify_notification(
        self, headers: Mapping[str, str], body: bytes, now: int | None = None
    ) -> WeChatNotification:
        current = int(self._clock()) if now is None else now
        return _verify_notification(
            headers, body, self._platform_keys, self.config.apiv3_key, now=current
        )

    # --- plumbing -------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        url = self.config.base_url.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        content = (
            b""
            if body is None
            else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        )
        response = self._send(method, url, content, dict(headers or {}))
        if response.status_code >= 500:
            raise _error_from(response, retryable=True)
        try:
            verify_signed_headers(
                response.headers, response.content, self._platform_keys, now=int(self._clock())
            )
        except NotificationRejected as exc:
            raise ProviderError("bad_response_signature", exc.code, response.status_code) from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json() if response.content else {}

    def _send(
        self, method: str, url: str, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        # Sign exactly the path and query that go on the wire.
        path_with_query = httpx.URL(url).raw_path.decode("ascii")
        headers["Authorization"] = build_authorization(
            self._key,
            mchid=self.config.mchid,
            serial=self.config.merchant_serial,
            method=method,
            path_with_query=path_with_query,
            body=content,
            timestamp=int(self._clock()),
        )
        headers["Accept"] = "application/json"
        if content:
            headers["Content-Type"] = "application/json"
        return send(self._http, method, url, content=content or None, headers=headers)


def _error_from(response: httpx.Response, retryable: bool = False) -> ProviderError:
    try:
        payload = response.json()
        code, message = str(payload.get("code", "")), str(payload.get("message", ""))
    except ValueError:
        code, message = "", response.text[:200]
    code = code or f"http_{response.status_code}"
    retryable = retryable or code in _RETRYABLE_CODES or response.status_code == 429
    return ProviderError(code, message, response.status_code, retryable)

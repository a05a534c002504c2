"""WeChat Pay API v3 simulator: verifies our signed requests, signs its answers and sends
encrypted, signed notifications the way WeChat does.

`WeChatPaySim.app` is the ASGI app (routes in `wechatpay_routes`); the public
async methods are the same controls the `/sim/...` endpoints expose.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from providers.crypto import aes_gcm_encrypt, nonce_str, rsa_oaep_decrypt, rsa_sign, rsa_verify
from providers.keys import DevKeys, load_private_key, load_public_key
from providers.sim.clock import beijing_date, rfc3339
from providers.sim.errors import SimError
from providers.sim.notifier import Deliver, Delivery, DeliveryPolicy, Notifier, Outgoing
from providers.sim.wechatpay_bill import render_trade_bill
from providers.sim.wechatpay_orders import OrderBook
from providers.sim.wechatpay_routes import build_app
from providers.sim.wechatpay_transfers import TransferBook
from providers.wechatpay_protocol import (
    MAX_SKEW_S,
    parse_authorization,
    request_message,
    sign_headers,
)

_SUMMARIES = {
    "TRANSACTION.SUCCESS": "支付成功",
    "REFUND.SUCCESS": "退款成功",
    "REFUND.ABNORMAL": "退款异常",
    "REFUND.CLOSED": "退款关闭",
    "MCHTRANSFER.BILL.FINISHED": "商家转账单据终态通知",
}


def _wechat_accepts(status: int, _reply: bytes) -> bool:
    return status in (200, 204)


class WeChatPaySim:
    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        merchant_serial: str,
        merchant_public_key_pem: bytes,
        platform_private_keys: Mapping[str, bytes],
        apiv3_key: bytes,
        deliver: Deliver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mchid, self.appid, self.merchant_serial = mchid, appid, merchant_serial
        self.apiv3_key = apiv3_key
        self.clock = clock
        self._merchant_key = load_public_key(merchant_public_key_pem)
        self._platform_keys = {s: load_private_key(pem) for s, pem in platform_private_keys.items()}
        self.signing_serial = next(iter(self._platform_keys))
        self.orders = OrderBook(mchid, appid, clock)
        self.transfers = TransferBook(mchid, appid, clock)
        self.notifier = Notifier(deliver, _wechat_accepts, clock)
        self.corrupt_bill_hash = False
        self._failures: list[SimError] = []
        self._bill_files: dict[str, bytes] = {}
        self.app = build_app(self)

    @classmethod
    def from_keys(
        cls,
        keys: DevKeys,
        *,
        mchid: str,
        appid: str,
        deliver: Deliver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> WeChatPaySim:
        # The newer "WeChat Pay public key" signs by default; the certificate key can be chosen.
        platform = {
            keys.wechat_pub_key_id: keys.wechat_pubkey.private_pem,
            keys.wechat_platform_serial: keys.wechat_platform.private_pem,
        }
        return cls(
            mchid=mchid,
            appid=appid,
            merchant_serial=keys.merchant_serial,
            merchant_public_key_pem=keys.merchant.public_pem,
            platform_private_keys=platform,
            apiv3_key=keys.apiv3_key,
            deliver=deliver,
            clock=clock,
        )

    # --- protocol -------------------------------------------------------------------------
    def verify_request(
        self, method: str, path_with_query: str, authorization: str, body: bytes
    ) -> None:
        try:
            auth = parse_authorization(authorization)
        except ValueError as exc:
            raise SimError(401, "SIGN_ERROR", str(exc)) from None
        if auth.mchid != self.mchid or auth.serial_no != self.merchant_serial:
            raise SimError(401, "SIGN_ERROR", "unknown mchid or merchant serial")
        if not auth.timestamp.isdigit() or abs(self.clock() - int(auth.timestamp)) >= MAX_SKEW_S:
            raise SimError(401, "SIGN_ERROR", "timestamp out of window")
        message = request_message(method, path_with_query, auth.timestamp, auth.nonce_str, body)
        if not rsa_verify(self._merchant_key, message, auth.signature):
            raise SimError(401, "SIGN_ERROR", "signature does not verify")

    def sign(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        ts = int(self.clock()) if timestamp is None else timestamp
        return sign_headers(
            self._platform_keys[self.signing_serial], self.signing_serial, body, timestamp=ts
        )

    def decrypt_field(self, serial: str, ciphertext: str) -> str:
        if serial not in self._platform_keys:
            raise SimError(400, "PARAM_ERROR", "Wechatpay-Serial names no platform key")
        try:
            return rsa_oaep_decrypt(self._platform_keys[serial], ciphertext)
        except ValueError:
            raise SimError(400, "PARAM_ERROR", "encrypted field does not decrypt") from None

    def take_failure(self) -> SimError | None:
        return self._failures.pop(0) if self._failures else None

    # --- statements -----------------------------------------------------------------------
    def trade_bill(self, bill_date: str, own_base_url: str) -> dict[str, str]:
        if bill_date > beijing_date(self.clock()):
            raise SimError(400, "NO_STATEMENT_EXIST", "the bill for that date does not exist yet")
        content = render_trade_bill(*self.orders.bill_records(bill_date))
        token = secrets.token_urlsafe(16)
        self._bill_files[token] = content
        digest = hashlib.sha1(content + (b"x" if self.corrupt_bill_hash else b"")).hexdigest()
        return {
            "hash_type": "SHA1",
            "hash_value": digest,
            "download_url": f"{own_base_url}/v3/billdownload/file?token={token}",
        }

    def bill_file(self, token: str) -> bytes:
        if token not in self._bill_files:
            raise SimError(404, "RESOURCE_NOT_EXISTS", "unknown download token")
        return self._bill_files[token]

    # --- notifications --------------------------------------------------------------------
    def build_notification(
        self,
        event_type: str,
        original_type: str,
        resource: dict[str, Any],
        *,
        associated_data: str | None = None,
    ) -> tuple[str, bytes]:
        nonce = nonce_str(12)
        aad = original_type if associated_data is None else associated_data
        plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
        notification_id = str(uuid.uuid4())
        envelope = {
            "id": notification_id,
            "create_time": rfc3339(self.clock()),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": _SUMMARIES.get(event_type, event_type),
            "resource": {
                "original_type": original_type,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": aes_gcm_encrypt(self.apiv3_key, nonce, aad, plaintext),
                "associated_data": aad,
                "nonce": nonce,
            },
        }
        return notification_id, json.dumps(envelope, ensure_ascii=False).encode()

    def _render(self, body: bytes) -> Callable[[DeliveryPolicy], tuple[dict[str, str], bytes]]:
        def render(policy: DeliveryPolicy) -> tuple[dict[str, str], bytes]:
            now = int(self.clock())
            headers = self.sign(body, timestamp=now - 600 if policy.old_timestamp else now)
            if policy.bad_signature:
                key = self._platform_keys[self.signing_serial]
                headers["Wechatpay-Signature"] = rsa_sign(key, b"not this message")
            return headers | {"Content-Type": "application/json"}, body

        return render

    async def _notify(
        self,
        url: str,
        event_type: str,
        original_type: str,
        resource: dict[str, Any],
        overrides: Mapping[str, Any],
    ) -> list[Delivery]:
        if not url:
            return []
        policy = self.notifier.policy.merged(overrides)
        notification_id, body = self.build_notification(event_type, original_type, resource)
        return await self.notifier.dispatch(
            [Outgoing(url, event_type, notification_id, self._render(body), policy)]
        )

    # --- controls (also served under /sim/...) --------------------------------------------
    async def pay(self, out_trade_no: str, **overrides: Any) -> list[Delivery]:
        """The user paid: mark the order paid and send TRANSACTION.SUCCESS."""
        policy = self.notifier.policy.merged(overrides)
        order = self.orders.mark_paid(out_trade_no)
        resource = self.orders.transaction(order)
        if policy.amount_override is not None:
            resource["amount"] |= {
                "total": policy.amount_override,
                "payer_total": policy.amount_override,
            }
        return await self._notify(
            order.notify_url, "TRANSACTION.SUCCESS", "transaction", resource, overrides
        )

    async def settle_refund(
        self, out_refund_no: str, status: str = "SUCCESS", **overrides: Any
    ) -> list[Delivery]:
        refund = self.orders.settle_refund(out_refund_no, status)
        resource = self.orders.refund_resource(refund, for_notification=True)
        return await self._notify(
            refund.notify_url, f"REFUND.{status}", "refund", resource, overrides
        )

    def confirm_transfer(self, out_bill_no: str) -> str:
        return self.transfers.confirm(out_bill_no).state

    async def finish_transfer(
        self, out_bill_no: str, success: bool = True, fail_reason: str = "", **overrides: Any
    ) -> list[Delivery]:
        self.transfers.finish(out_bill_no, success, fail_reason)
        return await self.notify_transfer(out_bill_no, **overrides)

    async def notify_transfer(self, out_bill_no: str, **overrides: Any) -> list[Delivery]:
        transfer = self.transfers.get(out_bill_no)
        return await self._notify(
            transfer.notify_url,
            "MCHTRANSFER.BILL.FINISHED",
            "mch_payment",
            self.transfers.resource(transfer),
            overrides,
        )

    def configure_delivery(self, **options: Any) -> DeliveryPolicy:
        return self.notifier.configure(**options)

    async def release(self, shuffle: bool = False, seed: int | None = None) -> list[Delivery]:
        return await self.notifier.release(shuffle, seed)

    async def retry_failed(self) -> list[Delivery]:
        return await self.notifier.retry_failed()

    def fail_next(
        self, status: int = 500, code: str = "SYSTEM_ERROR", message: str = "", times: int = 1
    ) -> None:
        """The next `times` API calls answer this error (after verifying the signature)."""
        self._failures.extend(SimError(status, code, message) for _ in range(times))

    def use_platform_key(self, serial: str) -> None:
        if serial not in self._platform_keys:
            raise SimError(400, "PARAM_ERROR", "unknown platform serial")
        self.signing_serial = serial

    @property
    def deliveries(self) -> list[Delivery]:
        return self.notifier.deliveries

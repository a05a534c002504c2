"""Verify and decrypt WeChat Pay v3 notifications (payments, refunds, transfers).

The endpoint must verify, record and reply within 5 s; anything slower belongs
in a worker. Success is 204 with no body; any failure reply makes WeChat retry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from providers.crypto import aes_gcm_decrypt
from providers.errors import NotificationRejected
from providers.wechatpay_protocol import verify_signed_headers


@dataclass(frozen=True)
class WeChatNotification:
    id: str
    event_type: str
    resource: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @property
    def merchant_id(self) -> str | None:
        # Transfer notifications name the merchant `mchid` or `mch_id` (unconfirmed): accept both.
        value = self.resource.get("mchid", self.resource.get("mch_id"))
        return None if value is None else str(value)


def verify_notification(
    headers: Mapping[str, str],
    body: bytes,
    public_keys: Mapping[str, rsa.RSAPublicKey],
    apiv3_key: bytes,
    *,
    now: int | None = None,
) -> WeChatNotification:
    verify_signed_headers(headers, body, public_keys, now=now)
    try:
        envelope = json.loads(body)
        resource = envelope["resource"]
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise ValueError("unsupported algorithm")
        plaintext = aes_gcm_decrypt(
            apiv3_key,
            resource["nonce"],
            resource.get("associated_data") or "",
            resource["ciphertext"],
        )
        decrypted = json.loads(plaintext)
        return WeChatNotification(
            id=str(envelope["id"]),
            event_type=str(envelope["event_type"]),
            resource=decrypted,
            raw=envelope,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NotificationRejected("bad_resource", str(exc)) from None


def success_reply() -> tuple[int, bytes]:
    return 204, b""


def failure_reply(message: str, status: int = 400) -> tuple[int, bytes]:
    """Any non-2xx reply makes WeChat retry on its schedule (about 24 h in all)."""
    body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode()
    return status, body

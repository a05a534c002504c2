"""WeChat Pay API v3 signatures, shared by our client and the simulator.

Requests carry `Authorization: WECHATPAY2-SHA256-RSA2048 ...` signed by the
merchant key; responses and notifications carry `Wechatpay-*` headers signed by
the platform key over `timestamp\\nnonce\\nbody\\n` (the exact raw body bytes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from providers.crypto import nonce_str, rsa_sign, rsa_verify
from providers.errors import NotificationRejected

AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
MAX_SKEW_S = 300
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def request_message(
    method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes
) -> bytes:
    return f"{method}\n{path_with_query}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def build_authorization(
    key: rsa.RSAPrivateKey,
    *,
    mchid: str,
    serial: str,
    method: str,
    path_with_query: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or nonce_str()
    signature = rsa_sign(key, request_message(method, path_with_query, ts, nonce, body))
    return (
        f'{AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{ts}",serial_no="{serial}"'
    )


@dataclass(frozen=True)
class Authorization:
    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def parse_authorization(header: str) -> Authorization:
    schema, _, rest = header.strip().partition(" ")
    if schema != AUTH_SCHEMA:
        raise ValueError("unknown authorization schema")
    fields = dict(_AUTH_FIELD.findall(rest))
    try:
        return Authorization(
            fields["mchid"],
            fields["nonce_str"],
            fields["signature"],
            fields["timestamp"],
            fields["serial_no"],
        )
    except KeyError as exc:
        raise ValueError(f"authorization lacks {exc.args[0]}") from None


def sign_headers(
    key: rsa.RSAPrivateKey,
    serial: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or nonce_str()
    return {
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": rsa_sign(key, signed_message(ts, nonce, body)),
        "Wechatpay-Serial": serial,
    }


def verify_signed_headers(
    headers: Mapping[str, str],
    body: bytes,
    public_keys: Mapping[str, rsa.RSAPublicKey],
    *,
    now: int | None = None,
) -> None:
    """Raise NotificationRejected unless the Wechatpay-* headers sign `body` (exact bytes)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    values = [
        lowered.get(f"wechatpay-{name}", "").strip()
        for name in ("serial", "signature", "timestamp", "nonce")
    ]
    serial, signature, timestamp, nonce = values
    if not all(values):
        raise NotificationRejected("missing_header", "empty or absent Wechatpay-* header")
    if signature.startswith(SIGNTEST_PREFIX):
        # WeChat probes that merchants really verify: this must never pass.
        raise NotificationRejected("signature_test_probe")
    key = public_keys.get(serial)
    if key is None:
        raise NotificationRejected("unknown_serial", serial)
    if not timestamp.isdigit():
        raise NotificationRejected("missing_header", "malformed Wechatpay-Timestamp")
    if not rsa_verify(key, signed_message(timestamp, nonce, body), signature):
        raise NotificationRejected("bad_signature")
    current = int(time.time()) if now is None else now
    if abs(current - int(timestamp)) >= MAX_SKEW_S:
        raise NotificationRejected("stale_timestamp", timestamp)

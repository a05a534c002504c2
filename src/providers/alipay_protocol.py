"""Alipay open-platform RSA2 signing, shared by our client and the simulator.

Requests: SHA256withRSA over the non-empty parameters except `sign`, sorted by
key, joined `k=v&k=v` with raw values. Notifications: the same but `sign_type`
is left out too. Responses: over the exact JSON text of `<method>_response`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from providers.crypto import rsa_sign, rsa_verify

BEIJING = timezone(timedelta(hours=8))
REQUEST_EXCLUDED = ("sign",)
NOTIFY_EXCLUDED = ("sign", "sign_type")


def sign_content(params: Mapping[str, str], excluded: Iterable[str] = REQUEST_EXCLUDED) -> bytes:
    skip = set(excluded)
    items = sorted((k, v) for k, v in params.items() if k not in skip and v not in ("", None))
    return "&".join(f"{k}={v}" for k, v in items).encode("utf-8")


def sign_params(
    key: rsa.RSAPrivateKey, params: Mapping[str, str], excluded: Iterable[str] = REQUEST_EXCLUDED
) -> str:
    return rsa_sign(key, sign_content(params, excluded))


def verify_params(
    key: rsa.RSAPublicKey, params: Mapping[str, str], excluded: Iterable[str] = REQUEST_EXCLUDED
) -> bool:
    return rsa_verify(key, sign_content(params, excluded), params.get("sign", ""))


def beijing_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def render_response(key: rsa.RSAPrivateKey | None, name: str, payload: Mapping[str, Any]) -> str:
    """A gateway reply: `{"<name>": {...}, "sign": "..."}`, signed over the inner JSON text."""
    inner = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    signed = f',"sign":"{rsa_sign(key, inner.encode())}"' if key is not None else ""
    return f'{{"{name}":{inner}{signed}}}'


def extract_response(text: str, name: str) -> tuple[str, dict[str, Any]] | None:
    """Return the raw JSON text of `name` and its value: the signature covers the raw text,
    so it must not be re-serialised."""
    marker = text.find(f'"{name}"')
    if marker < 0:
        return None
    position = text.index(":", marker + len(name) + 2) + 1
    while text[position].isspace():
        position += 1
    value, end = json.JSONDecoder().raw_decode(text, position)
    if not isinstance(value, dict):
        return None
    return text[position:end], value

"""What goes over the wire to a station's webhook: the signature, where it may go, one POST.

    X-Ledger-Event-Id:   the event's id, the same on every retry (the receiver's idempotency key)
    X-Ledger-Timestamp:  unix seconds when this attempt was signed
    X-Ledger-Signature:  sha256=<hex HMAC-SHA256 over "<timestamp>.<raw body>", keyed by the
                         station's signing secret>

A receiver recomputes the HMAC over the raw body, compares in constant time, refuses stale
timestamps (we suggest five minutes), and ignores an event id it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from infra.secrets import SecretBox, SecretsUnreadable
from infra.settings import Settings

TIMEOUT = httpx.Timeout(5.0, connect=3.0)  # a slow receiver must not hold a worker thread
SIGNATURE_TOLERANCE_S = 300
USER_AGENT = "fuel-ledger-webhooks/1"
SECRET_PREFIX = "whsec_"


# -- signing -----------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """What a receiver does (shown here for partners, and used by the tests)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def seal_secret(box: SecretBox, secret: str) -> str:
    return box.seal({"secret": secret}).decode("ascii")


def open_secret(box: SecretBox, sealed: str) -> str:
    return box.open(sealed.encode("ascii"))["secret"]


# -- where a webhook may point ---------------------------------------------------------------

Resolver = Callable[..., list[Any]]


def private_allowed(settings: Settings) -> bool:
    """Development and test may point at a local receiver; production may not."""
    return settings.environment != "production"


def url_refusal(url: str, *, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> str:
    """Why a delivery may not go to `url` ("" when it may): http(s) only, and outside
    development no loopback, private, link-local or otherwise non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "a webhook URL is http:// or https:// with a host"
    if allow_private:
        return ""
    host = parts.hostname
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            found = resolve(host, parts.port or 443, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return f"{host} does not resolve"
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found}
    for address in addresses:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            return f"{host} points to a private or reserved address ({address})"
    return "" if addresses else f"{host} does not resolve"


# -- one attempt -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    outcome: str  # delivered | failed (non-2xx) | timeout | error (no connection) | refused
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0

    @property
    def final(self) -> bool:
        """Nothing to retry: it arrived, or it never may."""
        return self.outcome in ("delivered", "refused")


def post(
    url: str,
    secret: str,
    event_id: str,
    body: bytes,
    *,
    client: httpx.Client | None = None,
    clock: Callable[[], float] = time.time,
) -> Attempt:
    """POST once; the answer's body is never read (a receiver cannot make us download)."""
    timestamp = str(int(clock()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Ledger-Event-Id": event_id,
        "X-Ledger-Timestamp": timestamp,
        "X-Ledger-Signature": sign(secret, timestamp, body),
    }
    http = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
    started = time.perf_counter()
    try:
        with http.stream("POST", url, content=body, headers=headers) as response:
            code = response.status_code
    except httpx.TimeoutException as exc:
        return Attempt("timeout", None, str(exc) or "timed out", _ms_since(started))
    except httpx.HTTPError as exc:
        return Attempt("error", None, str(exc)[:300] or type(exc).__name__, _ms_since(started))
    finally:
        if client is None:
            http.close()
    outcome = "delivered" if 200 <= code < 300 else "failed"
    return Attempt(outcome, code, None, _ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def attempt(settings: Settings, url: str, sealed: str, event_id: str, body: bytes) -> Attempt:
    """Check where it goes (again: DNS may have changed), unseal the secret, POST."""
    refusal = url_refusal(url, allow_private=private_allowed(settings))
    if refusal:
        return Attempt("refused", None, refusal)
    try:
        secret = open_secret(SecretBox.from_settings(settings), sealed)
    except SecretsUnreadable:
        return Attempt("refused", None, "the signing secret cannot be unsealed: set it again")
    return post(url, secret, event_id, body)

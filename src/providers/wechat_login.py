"""WeChat mini-program login (code2session) and phone number, at a caller-given base URL.

The session_key stays on the server: it is hidden from repr and must never be
returned to the client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from providers.errors import ProviderError
from providers.transport import new_http_client, send

# 40163 means the code was already used: for the caller that is an invalid code too.
_CODES = {
    40029: "invalid_code",
    40163: "invalid_code",
    45011: "rate_limited",
    40226: "user_blocked",
    -1: "provider_busy",
}
_TOKEN_ERRORS = {40001, 42001, 40014}  # the access token is invalid or expired
_TOKEN_MARGIN_S = 300  # refresh early: a token expiring mid-request is a failed login


class WeChatLoginError(ProviderError):
    def __init__(
        self, code: str, message: str = "", errcode: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(code, message, None, retryable)
        self.errcode = errcode


@dataclass(frozen=True)
class Session:
    openid: str
    unionid: str | None
    session_key: str = field(repr=False)


@dataclass(frozen=True)
class Phone:
    phone: str  # with the country code for numbers outside mainland China
    pure: str
    country_code: str


class WeChatLoginClient:
    def __init__(
        self,
        appid: str,
        secret: str,
        base_url: str,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.appid = appid
        self._secret = secret
        self._base = base_url.rstrip("/")
        self._http = http or new_http_client()
        self._clock = clock
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()

    def code2session(self, code: str) -> Session:
        data = self._get(
            "/sns/jscode2session",
            {
                "appid": self.appid,
                "secret": self._secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        return Session(
            openid=str(data["openid"]),
            unionid=data.get("unionid") or None,
            session_key=str(data["session_key"]),
        )

    def phone_number(self, code: str, access_token: str | None = None) -> Phone:
        """With no access_token, uses the cached one and refreshes it once if WeChat rejects it."""
        token = access_token or self.access_token()
        try:
            data = self._post_phone(code, token)
        except WeChatLoginError as exc:
            if access_token or exc.errcode not in _TOKEN_ERRORS:
                raise
            self._token = None
            data = self._post_phone(code, self.access_token())
        info = data.get("phone_info") or {}
        if str((info.get("watermark") or {}).get("appid", "")) != self.appid:
            raise WeChatLoginError("watermark_mismatch", "phone_info is for another appid")
        return Phone(
            phone=str(info["phoneNumber"]),
            pure=str(info["purePhoneNumber"]),
            country_code=str(info["countryCode"]),
        )

    def access_token(self) -> str:
        with self._token_lock:
            now = self._clock()
            if self._token is None or self._token[1] <= now:
                data = self._get(
                    "/cgi-bin/token",
                    {
                        "grant_type": "client_credential",
                        "appid": self.appid,
                        "secret": self._secret,
                    },
                )
                lifetime = int(data.get("expires_in", 7200))
                self._token = (
                    str(data["access_token"]),
                    now + max(lifetime - _TOKEN_MARGIN_S, lifetime // 2),
                )
            return self._token[0]

    def _post_phone(self, code: str, token: str) -> dict[str, Any]:
        url = f"{self._base}/wxa/business/getuserphonenumber?{urlencode({'access_token': token})}"
        return self._checked(
            _send(
                self._http,
                "POST",
                url,
                content=_json({"code": code}),
                headers={"Content-Type": "application/json"},
            )
        )

    def _get(self, path: str, query: Mapping[str, str]) -> dict[str, Any]:
        return self._checked(_send(self._http, "GET", f"{self._base}{path}?{urlencode(query)}"))

    @staticmethod
    def _checked(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 500:
            raise WeChatLoginError("provider_busy", f"HTTP {response.status_code}", retryable=True)
        try:
            # WeChat answers JSON, sometimes labelled text/plain.
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise WeChatLoginError("provider_error", response.text[:200])
        errcode = int(data.get("errcode") or 0)
        if errcode:
            code = _CODES.get(errcode, "provider_error")
            raise WeChatLoginError(
                code, str(data.get("errmsg", "")), errcode, retryable=code == "provider_busy"
            )
        return data


def _json(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return send(http, method, url, **kwargs)
    except ProviderError as exc:  # timeouts and network errors: the caller may retry
        raise WeChatLoginError("provider_busy", exc.message, retryable=True) from exc

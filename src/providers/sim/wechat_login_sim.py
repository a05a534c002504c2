"""WeChat mini-program login simulator: jscode2session, access tokens, phone numbers.

Codes are minted by a control call (what the mini-program's wx.login would
produce), are single-use and live 5 minutes, as WeChat's do.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.sim.http_util import json_body

CODE_TTL_S = 300
TOKEN_TTL_S = 7200


@dataclass
class _Code:
    payload: dict[str, Any]
    expires_at: float
    used: bool = False


class WeChatLoginSim:
    def __init__(self, *, appid: str, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.appid, self.secret, self.clock = appid, secret, clock
        self._codes: dict[str, _Code] = {}
        self._phone_codes: dict[str, _Code] = {}
        self._tokens: dict[str, float] = {}
        self._forced: dict[str, list[int]] = {"jscode2session": [], "phone": [], "token": []}
        self.token_requests = 0
        self.app = self._build_app()

    # --- controls -------------------------------------------------------------------------
    def mint_code(self, openid: str, unionid: str | None = None) -> str:
        code = secrets.token_urlsafe(24)
        payload = {"openid": openid} | ({"unionid": unionid} if unionid else {})
        self._codes[code] = _Code(payload, self.clock() + CODE_TTL_S)
        return code

    def mint_phone_code(
        self, phone: str, country_code: str = "86", watermark_appid: str | None = None
    ) -> str:
        code = secrets.token_hex(32)
        shown = phone if country_code == "86" else f"+{country_code} {phone}"
        info = {
            "phoneNumber": shown,
            "purePhoneNumber": phone,
            "countryCode": country_code,
            "watermark": {"timestamp": int(self.clock()), "appid": watermark_appid or self.appid},
        }
        self._phone_codes[code] = _Code(info, self.clock() + CODE_TTL_S)
        return code

    def force_error(self, errcode: int, times: int = 1, endpoint: str = "jscode2session") -> None:
        self._forced[endpoint].extend([errcode] * times)

    def expire_tokens(self) -> None:
        self._tokens.clear()

    # --- protocol -------------------------------------------------------------------------
    def _forced_error(self, endpoint: str) -> dict[str, Any] | None:
        if self._forced[endpoint]:
            errcode = self._forced[endpoint].pop(0)
            return {"errcode": errcode, "errmsg": f"simulated error {errcode}"}
        return None

    def _credentials_error(self, appid: str | None, secret: str | None) -> dict[str, Any] | None:
        if appid != self.appid:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if secret != self.secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        return None

    @staticmethod
    def _take(codes: dict[str, _Code], code: str, now: float) -> dict[str, Any] | _Code:
        found = codes.get(code)
        if found is None or found.expires_at <= now:
            return {"errcode": 40029, "errmsg": "invalid code"}
        if found.used:
            return {"errcode": 40163, "errmsg": "code been used"}
        found.used = True
        return found

    def jscode2session(self, query: dict[str, str]) -> dict[str, Any]:
        error = self._credentials_error(
            query.get("appid"), query.get("secret")
        ) or self._forced_error("jscode2session")
        if error:
            return error
        if query.get("grant_type") != "authorization_code":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        taken = self._take(self._codes, query.get("js_code", ""), self.clock())
        if isinstance(taken, dict):
            return taken
        session_key = base64.b64encode(secrets.token_bytes(16)).decode()
        return taken.payload | {"session_key": session_key}

    def token(self, query: dict[str, str]) -> dict[str, Any]:
        self.token_requests += 1
        error = self._credentials_error(
            query.get("appid"), query.get("secret")
        ) or self._forced_error("token")
        if error:
            return error
        token = secrets.token_urlsafe(48)
        self._tokens[token] = self.clock() + TOKEN_TTL_S
        return {"access_token": token, "expires_in": TOKEN_TTL_S}

    def phone(self, access_token: str, code: str) -> dict[str, Any]:
        if self._tokens.get(access_token, 0) <= self.clock():
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
        error = self._forced_error("phone")
        if error:
            return error
        taken = self._take(self._phone_codes, code, self.clock())
        if isinstance(taken, dict):
            return taken
        return {"errcode": 0, "errmsg": "ok", "phone_info": taken.payload}

    def _build_app(self) -> Starlette:
        async def jscode2session(request: Request) -> Response:
            # WeChat labels this JSON as text/plain; clients must not rely on the type.
            return JSONResponse(
                self.jscode2session(dict(request.query_params)), media_type="text/plain"
            )

        async def token(request: Request) -> Response:
            return JSONResponse(self.token(dict(request.query_params)))

        async def phone(request: Request) -> Response:
            body = await json_body(request, required=False)
            return JSONResponse(
                self.phone(request.query_params.get("access_token", ""), str(body.get("code", "")))
            )

        async def mint(request: Request) -> Response:
            body = await json_body(request)
            return JSONResponse({"code": self.mint_code(str(body["openid"]), body.get("unionid"))})

        async def mint_phone(request: Request) -> Response:
            body = await json_body(request)
            return JSONResponse(
                {
                    "code": self.mint_phone_code(
                        str(body["phone"]),
                        str(body.get("country_code", "86")),
                        body.get("watermark_appid"),
                    )
                }
            )

        async def errors(request: Request) -> Response:
            body = await json_body(request)
            self.force_error(
                int(body["errcode"]),
                int(body.get("times", 1)),
                str(body.get("endpoint", "jscode2session")),
            )
            return JSONResponse({"queued": body})

        return Starlette(
            routes=[
                Route("/sns/jscode2session", jscode2session),
                Route("/cgi-bin/token", token),
                Route("/wxa/business/getuserphonenumber", phone, methods=["POST"]),
                Route("/sim/codes", mint, methods=["POST"]),
                Route("/sim/phone-codes", mint_phone, methods=["POST"]),
                Route("/sim/errors", errors, methods=["POST"]),
            ]
        )

"""SMS provider simulator: verifies the HMAC-SHA256 signature and records each message."""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.sim.errors import SimError
from providers.sim.http_util import json_body, path_with_query
from providers.sms import SCHEME, SEND_PATH, hmac_signature, string_to_sign

MAX_SKEW_S = 300
_PHONE = re.compile(r"^\+?\d{6,15}$")
_AUTH = re.compile(rf"^{SCHEME} AccessKeyId=([^,]+),Signature=(\S+)$")


@dataclass(frozen=True)
class SmsMessage:
    message_id: str
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    at: float


class SmsSim:
    def __init__(
        self, *, credentials: Mapping[str, str], clock: Callable[[], float] = time.time
    ) -> None:
        self.credentials = dict(credentials)  # access key id -> secret
        self.clock = clock
        self.messages: list[SmsMessage] = []
        self._nonces: dict[str, float] = {}
        self._failures: list[SimError] = []
        self.app = Starlette(
            routes=[
                Route(SEND_PATH, self._send, methods=["POST"]),
                Route("/sim/messages", self._list),
                Route("/sim/fail-next", self._fail_next, methods=["POST"]),
            ]
        )

    def fail_next(
        self, status: int = 503, code: str = "ServiceUnavailable", times: int = 1
    ) -> None:
        self._failures.extend(SimError(status, code) for _ in range(times))

    def verify(
        self, authorization: str, timestamp: str, nonce: str, path: str, body: bytes
    ) -> None:
        match = _AUTH.match(authorization)
        if match is None or match.group(1) not in self.credentials:
            raise SimError(401, "InvalidAccessKeyId", "unknown or missing access key")
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) >= MAX_SKEW_S:
            raise SimError(401, "RequestTimeTooSkewed", "timestamp out of window")
        expected = hmac_signature(
            self.credentials[match.group(1)], string_to_sign("POST", path, timestamp, nonce, body)
        )
        if not hmac.compare_digest(expected, match.group(2)):
            raise SimError(401, "SignatureDoesNotMatch", "signature does not verify")
        # A replayed request is refused: the nonce is remembered for the time window.
        self._nonces = {n: t for n, t in self._nonces.items() if t > self.clock() - MAX_SKEW_S}
        if not nonce or nonce in self._nonces:
            raise SimError(401, "SignatureNonceUsed", "nonce already used")
        self._nonces[nonce] = self.clock()

    async def _send(self, request: Request) -> Response:
        body = await request.body()
        try:
            self.verify(
                request.headers.get("authorization", ""),
                request.headers.get("x-sms-timestamp", ""),
                request.headers.get("x-sms-nonce", ""),
                path_with_query(request),
                body,
            )
            if self._failures:
                raise self._failures.pop(0)
            data = await json_body(request)
            phone, template = str(data.get("phone", "")), str(data.get("template_code", ""))
            params = data.get("template_params") or {}
            if not _PHONE.match(phone) or not template or not isinstance(params, dict):
                raise SimError(400, "InvalidParameter", "phone, template_code, template_params")
        except SimError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, exc.status)
        message = SmsMessage(
            secrets.token_hex(10),
            phone,
            str(data.get("sign_name", "")),
            template,
            {str(k): str(v) for k, v in params.items()},
            self.clock(),
        )
        self.messages.append(message)
        return JSONResponse({"code": "OK", "message_id": message.message_id})

    async def _list(self, request: Request) -> Response:
        return JSONResponse({"messages": [asdict(m) for m in self.messages]})

    async def _fail_next(self, request: Request) -> Response:
        options: dict[str, Any] = await json_body(request, required=False)
        self.fail_next(**options)
        return JSONResponse({"queued": options})

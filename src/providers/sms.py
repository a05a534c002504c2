"""SMS client: send a template message, HMAC-SHA256 signed with an access key pair.

Wire format (the simulator implements the same; a real vendor adapter would
translate it): `POST {base}/v1/sms/send` with a JSON body, headers
`X-Sms-Timestamp`, `X-Sms-Nonce` and
`Authorization: HMAC-SHA256 AccessKeyId=<id>,Signature=<base64>` where the
signature covers `METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nhex(sha256(body))`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping

import httpx

from providers.crypto import nonce_str
from providers.errors import ProviderError
from providers.transport import new_http_client, send

SEND_PATH = "/v1/sms/send"
SCHEME = "HMAC-SHA256"


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{path}\n{timestamp}\n{nonce}\n{hashlib.sha256(body).hexdigest()}".encode()


def hmac_signature(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


class SmsClient:
    def __init__(
        self,
        base_url: str,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        http: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._key_id = access_key_id
        self._secret = access_key_secret
        self._sign_name = sign_name
        self._http = http or new_http_client()
        self._clock = clock

    def send(self, phone: str, template_code: str, params: Mapping[str, str]) -> str:
        """Returns the provider's message id. Not idempotent: do not blindly retry on timeout."""
        url = self._base + SEND_PATH
        body = json.dumps(
            {
                "phone": phone,
                "sign_name": self._sign_name,
                "template_code": template_code,
                "template_params": dict(params),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        timestamp, nonce = str(int(self._clock())), nonce_str(16)
        path = httpx.URL(url).raw_path.decode("ascii")
        signature = hmac_signature(
            self._secret, string_to_sign("POST", path, timestamp, nonce, body)
        )
        response = send(
            self._http,
            "POST",
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Sms-Timestamp": timestamp,
                "X-Sms-Nonce": nonce,
                "Authorization": f"{SCHEME} AccessKeyId={self._key_id},Signature={signature}",
            },
        )
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200 or data.get("code") != "OK":
            raise ProviderError(
                str(data.get("code") or f"http_{response.status_code}"),
                str(data.get("message", "")),
                response.status_code,
                response.status_code >= 500 or response.status_code == 429,
            )
        return str(data["message_id"])

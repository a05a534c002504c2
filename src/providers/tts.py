"""Text-to-speech client: station voice broadcasts ("WeChat received 300 yuan").

`POST {base}/v1/tts` with JSON `{text, voice, format}` and an optional bearer
key; the reply body is the audio file itself.
"""

from __future__ import annotations

import json

import httpx

from providers.errors import ProviderError
from providers.transport import new_http_client, send

TTS_PATH = "/v1/tts"


class TtsClient:
    def __init__(
        self, base_url: str, api_key: str | None = None, http: httpx.Client | None = None
    ) -> None:
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._http = http or new_http_client()

    def synthesize(self, text: str, voice: str = "default", audio_format: str = "wav") -> bytes:
        if not text.strip():
            raise ValueError("nothing to say")
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = json.dumps(
            {"text": text, "voice": voice, "format": audio_format}, ensure_ascii=False
        ).encode()
        response = send(self._http, "POST", self._base + TTS_PATH, content=body, headers=headers)
        if response.status_code != 200 or not response.content:
            raise ProviderError(
                f"http_{response.status_code}",
                response.text[:200],
                response.status_code,
                response.status_code >= 500,
            )
        return response.content

"""Text-to-speech simulator: answers a short valid WAV and records what it was asked to say."""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import asdict, dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.sim.errors import SimError
from providers.sim.http_util import json_body
from providers.tts import TTS_PATH

SAMPLE_RATE = 8000


@dataclass(frozen=True)
class SpokenText:
    text: str
    voice: str


def tone_wav(seconds: float, frequency: float = 440.0) -> bytes:
    """16-bit mono PCM: a quiet sine, enough for a player (or a station speaker) to accept."""
    frames = int(SAMPLE_RATE * seconds)
    samples = (
        int(3000 * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE)) for i in range(frames)
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return out.getvalue()


class TtsSim:
    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.texts: list[SpokenText] = []
        self.app = Starlette(
            routes=[
                Route(TTS_PATH, self._speak, methods=["POST"]),
                Route("/sim/texts", self._list),
            ]
        )

    async def _speak(self, request: Request) -> Response:
        try:
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                raise SimError(401, "unauthorized", "missing or wrong API key")
            data = await json_body(request)
            text = str(data.get("text", "")).strip()
            if not text or data.get("format", "wav") != "wav":
                raise SimError(400, "invalid_request", "non-empty text; format wav")
        except SimError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, exc.status)
        self.texts.append(SpokenText(text, str(data.get("voice", "default"))))
        # Length grows with the text, capped, so a test can tell answers apart cheaply.
        return Response(tone_wav(min(0.1 + 0.02 * len(text), 2.0)), media_type="audio/wav")

    async def _list(self, request: Request) -> Response:
        return JSONResponse({"texts": [asdict(t) for t in self.texts]})

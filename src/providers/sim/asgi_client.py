"""A synchronous httpx.Client that calls an ASGI app in-process (tests, no sockets).

httpx 0.28's ASGITransport is async-only; this runs it on an event loop in a
daemon thread, so our synchronous clients can talk to the simulators directly,
the simulators' background work (notification delivery) keeps running, and a
forgotten close() never blocks interpreter exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class SyncASGITransport(httpx.BaseTransport):
    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="asgi-client", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the app's loop, e.g. a simulator control such as `sim.pay(...)`."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> httpx.Response:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._inner.handle_async_request(inner)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self.run(call())

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def asgi_http_client(app: Any, base_url: str = "http://testserver") -> httpx.Client:
    return httpx.Client(transport=SyncASGITransport(app), base_url=base_url)

"""Notification delivery shared by the simulators: duplicates, reordering, delays, holds.

Delivery goes through a pluggable async `deliver(url, headers, body)` so tests can
post in-process to an ASGI app; every attempt and the reply it got is recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

Deliver = Callable[[str, dict[str, str], bytes], Awaitable[httpx.Response]]
Render = Callable[["DeliveryPolicy"], tuple[dict[str, str], bytes]]
Accepted = Callable[[int, bytes], bool]


async def http_deliver(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as client:  # WeChat waits 5 s for an answer
        return await client.post(url, headers=headers, content=body)


def asgi_deliver(app: Any) -> Deliver:
    """Deliver to an ASGI app in-process: the notify URL's path is kept, its host ignored."""
    transport = httpx.ASGITransport(app=app)

    async def deliver(url: str, headers: dict[str, str], body: bytes) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post(url, headers=headers, content=body)

    return deliver


@dataclass(frozen=True)
class DeliveryPolicy:
    times: int = 1  # copies of each notification, 1..5
    shuffle: bool = False  # reorder the copies (and, on release, everything held)
    delay_s: float = 0.0  # wait before each attempt
    bad_signature: bool = False
    old_timestamp: bool = False  # signed, but 10 minutes in the past
    amount_override: int | None = None  # fen, to test amount-mismatch handling
    hold: bool = False  # queue instead of sending; `release()` sends
    seed: int | None = None  # for reproducible shuffles

    def merged(self, overrides: Mapping[str, Any]) -> DeliveryPolicy:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown delivery options {sorted(unknown)}")
        policy = dataclasses.replace(self, **dict(overrides))
        if not 1 <= policy.times <= 5:
            raise ValueError("times must be 1..5")
        return policy


@dataclass
class Outgoing:
    url: str
    event: str
    notification_id: str
    render: Render
    policy: DeliveryPolicy


@dataclass
class Delivery:
    seq: int
    url: str
    event: str
    notification_id: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    reply: bytes
    accepted: bool
    error: str | None = None
    at: float = 0.0
    outgoing: Outgoing | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "url": self.url,
            "event": self.event,
            "notification_id": self.notification_id,
            "status": self.status,
            "reply": self.reply.decode("utf-8", "replace"),
            "accepted": self.accepted,
            "error": self.error,
            "at": self.at,
            "body": self.body.decode("utf-8", "replace"),
        }


class Notifier:
    def __init__(
        self, deliver: Deliver | None, accepted: Accepted, clock: Callable[[], float] = time.time
    ) -> None:
        self.deliver = deliver or http_deliver
        self.policy = DeliveryPolicy()
        self.deliveries: list[Delivery] = []
        self.pending: list[Outgoing] = []
        self._accepted = accepted
        self._clock = clock

    def configure(self, **options: Any) -> DeliveryPolicy:
        self.policy = self.policy.merged(options)
        return self.policy

    async def dispatch(self, items: list[Outgoing]) -> list[Delivery]:
        batch = [item for item in items for _ in range(item.policy.times)]
        if any(item.policy.shuffle for item in items):
            random.Random(items[0].policy.seed).shuffle(batch)
        if any(item.policy.hold for item in items):
            self.pending.extend(batch)
            return []
        return await self._send_all(batch)

    async def release(self, shuffle: bool = False, seed: int | None = None) -> list[Delivery]:
        batch, self.pending = self.pending, []
        if shuffle:
            random.Random(seed).shuffle(batch)
        return await self._send_all(batch)

    async def retry_failed(self) -> list[Delivery]:
        """Resend each notification none of whose attempts was accepted (WeChat's retries)."""
        done = {d.notification_id for d in self.deliveries if d.accepted}
        retry: dict[str, Outgoing] = {}
        for d in self.deliveries:
            if d.notification_id not in done and d.outgoing is not None:
                # The provider's own retry is genuine: the injected forgeries are not repeated.
                honest = dataclasses.replace(
                    d.outgoing.policy, bad_signature=False, old_timestamp=False, delay_s=0.0
                )
                retry.setdefault(d.notification_id, dataclasses.replace(d.outgoing, policy=honest))
        return await self._send_all(list(retry.values()))

    async def _send_all(self, batch: list[Outgoing]) -> list[Delivery]:
        return [await self._send(item) for item in batch]

    async def _send(self, item: Outgoing) -> Delivery:
        if item.policy.delay_s > 0:
            await asyncio.sleep(item.policy.delay_s)
        headers, body = item.render(item.policy)
        status, reply, error = None, b"", None
        try:
            response = await self.deliver(item.url, headers, body)
            status, reply = response.status_code, response.content
        except Exception as exc:  # noqa: BLE001 - any failure is a failed delivery, recorded
            error = f"{type(exc).__name__}: {exc}"
        delivery = Delivery(
            seq=len(self.deliveries) + 1,
            url=item.url,
            event=item.event,
            notification_id=item.notification_id,
            headers=headers,
            body=body,
            status=status,
            reply=reply,
            accepted=status is not None and self._accepted(status, reply),
            error=error,
            at=self._clock(),
            outgoing=item,
        )
        self.deliveries.append(delivery)
        return delivery

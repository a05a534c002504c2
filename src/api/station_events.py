"""A station console's live feed (M6): each paid order as a Server-Sent Event, with its voice
broadcast fetched separately as WAV.

The feed reads read.station_messages after the client's Last-Event-ID (the message's seq),
then waits for a wake-up on the station's Redis channel, or polls the table each second when
Redis is not there. A reconnecting EventSource sends Last-Event-ID itself, so nothing is
missed across a dropped connection; a first connection gets only what is new.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from psycopg_pool import ConnectionPool
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, forbidden, require_role
from api.errors import ApiError
from ledger.money import fen_to_yuan_str
from workers.effects import station_channel

router = APIRouter(prefix="/v1/partner/stations", tags=["partner"])
log = logging.getLogger("api.station_events")

StationReader = Annotated[Principal, Depends(require_role("partner", "admin"))]
KEEPALIVE_S = 15.0
POLL_S = 1.0  # without Redis; with it, the table is still read this often as a safety net
RECHECK_S = 5.0
PAGE = 100


def check_station(principal: Principal, station_id: UUID) -> None:
    if principal.role == "partner" and not principal.has_scope(f"station:{station_id}"):
        raise forbidden("This account is not for that station")


def latest_seq(pool: ConnectionPool, station_id: UUID) -> int:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT coalesce(max(seq), 0) FROM read.station_messages WHERE station_id = %s",
            (station_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def messages_after(pool: ConnectionPool, station_id: UUID, after: int) -> list[dict[str, Any]]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT seq, message_id, order_id, text, amount_fen, audio IS NOT NULL, created_at "
            "FROM read.station_messages WHERE station_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            (station_id, after, PAGE),
        ).fetchall()
    return [
        {
            "seq": seq,
            "message_id": str(message_id),
            "station_id": str(station_id),
            "order_id": str(order_id),
            "text": text,
            "amount_fen": amount_fen,
            "amount_yuan": fen_to_yuan_str(amount_fen),
            "audio_url": (
                f"{router.prefix}/{station_id}/messages/{message_id}/audio" if has_audio else None
            ),
            "created_at": created_at.isoformat(),
        }
        for seq, message_id, order_id, text, amount_fen, has_audio, created_at in rows
    ]


def frame(message: dict[str, Any]) -> str:
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return f"id: {message['seq']}\nevent: payment\ndata: {data}\n\n"


async def subscribe(redis_url: str | None, channel: str) -> PubSub | None:
    if not redis_url:
        return None
    client = Redis.from_url(redis_url, socket_connect_timeout=2)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel)
    except Exception as exc:  # noqa: BLE001 - Redis down: the feed polls instead
        log.info("station feed polls, Redis is unavailable: %s", exc)
        await pubsub.aclose()
        await client.aclose()
        return None
    return pubsub


async def wait_for_wakeup(pubsub: PubSub | None, seconds: float) -> PubSub | None:
    """Sleep until a wake-up or `seconds`; returns the subscription still usable, if any."""
    if pubsub is None:
        await asyncio.sleep(seconds)
        return None
    try:
        await pubsub.get_message(timeout=seconds)
        return pubsub
    except Exception as exc:  # noqa: BLE001 - Redis went away: poll from now on
        log.info("station feed falls back to polling: %s", exc)
        await close(pubsub)
        return None


async def close(pubsub: PubSub | None) -> None:
    if pubsub is not None:
        await pubsub.aclose()
        await pubsub.connection_pool.disconnect()


async def event_stream(
    pool: ConnectionPool,
    redis_url: str | None,
    station_id: UUID,
    after: int,
    max_seconds: float | None,
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds if max_seconds else None
    # Subscribe before the first read, so nothing published in between is missed.
    pubsub = await subscribe(redis_url, station_channel(station_id))
    try:
        yield "retry: 3000\n\n"
        quiet_since = loop.time()
        while True:
            for message in await run_in_threadpool(messages_after, pool, station_id, after):
                yield frame(message)
                after, quiet_since = message["seq"], loop.time()
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            if now - quiet_since >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet_since = now
            wait = min(
                KEEPALIVE_S - (now - quiet_since),
                RECHECK_S if pubsub is not None else POLL_S,
                deadline - now if deadline is not None else KEEPALIVE_S,
            )
            pubsub = await wait_for_wakeup(pubsub, max(wait, 0.0))
    finally:
        await close(pubsub)


@router.get(
    "/{station_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "payment events"}},
)
async def station_events(
    station_id: UUID,
    request: Request,
    principal: StationReader,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
    max_seconds: Annotated[
        float | None, Query(gt=0, le=3600, description="end the stream after this long")
    ] = None,
) -> StreamingResponse:
    """Paid orders at the station, as they happen: `event: payment`, `id:` the message seq."""
    check_station(principal, station_id)
    core = request.app.state.core
    after = last_event_id
    if after is None:
        after = await run_in_threadpool(latest_seq, core.read_pool, station_id)
    return StreamingResponse(
        event_stream(core.read_pool, core.settings.redis_url, station_id, after, max_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{station_id}/messages/{message_id}/audio",
    response_class=Response,
    responses={200: {"content": {"audio/wav": {}}, "description": "the voice broadcast"}},
)
def message_audio(
    station_id: UUID, message_id: UUID, request: Request, principal: StationReader
) -> Response:
    check_station(principal, station_id)
    with request.app.state.core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT audio, audio_type FROM read.station_messages "
            "WHERE message_id = %s AND station_id = %s",
            (message_id, station_id),
        ).fetchone()
    if row is None or row[0] is None:
        raise ApiError(404, "not_found", "No voice broadcast for that message")
    return Response(bytes(row[0]), media_type=row[1] or "audio/wav")

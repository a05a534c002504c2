"""Refuse text PostgreSQL cannot store before any handler sees it.

A NUL character (U+0000) fits in a JSON string, a query string and a form, but not in a
PostgreSQL text or jsonb value: let through, it fails the insert (and, inside a group
commit, the other commands batched with it) or, stored inside an event, stops every
projector that reads the event. So a request carrying one is refused with a 422 problem.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from api.errors import problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def install(app: FastAPI) -> None:
    app.add_middleware(RefuseNulCharacters)


class RefuseNulCharacters:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = _body_kind(scope)
        messages, body = await _read_body(receive) if kind else ([], b"")
        if _query_has_nul(scope) or (kind is not None and _body_has_nul(kind, body)):
            refusal = problem(422, "invalid_request", "Text may not contain NUL (U+0000)")
            await refusal(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _body_kind(scope: Scope) -> str | None:
    """ "json" or "form" for the bodies this guard reads; anything else passes untouched."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
            if media == b"application/json" or media.endswith(b"+json"):
                return "json"
            if media == b"application/x-www-form-urlencoded":
                return "form"
    return None


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """Every request message up to the end of the body, kept to hand on unchanged."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return messages, body


def _query_has_nul(scope: Scope) -> bool:
    query = scope.get("query_string", b"")
    return "\x00" in scope.get("path", "") or b"%00" in query or b"\x00" in query


def _body_has_nul(kind: str, body: bytes) -> bool:
    if b"\x00" in body:
        return True
    if kind == "form":
        return b"%00" in body
    return b"\\u0000" in body and _json_has_nul(body)


def _json_has_nul(body: bytes) -> bool:
    """Whether a decoded JSON body holds a NUL in any key or string (not just the
    escaped text `\\\\u0000`, which is a backslash and five letters)."""
    try:
        document = json.loads(body)
    except ValueError:
        return False  # not JSON: the handler refuses it on its own terms
    return _holds_nul(document)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False

"""Small request helpers the simulators share."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from providers.sim.errors import SimError


def path_with_query(request: Request) -> str:
    """The exact path and query the client sent (and signed), mount prefix included."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    query: bytes = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def own_base_url(request: Request) -> str:
    """Where this simulator is reachable, mount prefix included (for download URLs)."""
    root_path = str(request.scope.get("root_path", ""))
    return f"{request.url.scheme}://{request.url.netloc}{root_path}"


async def json_body(request: Request, required: bool = True) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        if required:
            raise SimError(400, "PARAM_ERROR", "a JSON body is required")
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise SimError(400, "PARAM_ERROR", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise SimError(400, "PARAM_ERROR", "the body must be a JSON object")
    return data

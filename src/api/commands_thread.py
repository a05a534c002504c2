"""Where the hottest write routes run their commands: a plain thread pool, reached with the
event loop's run_in_executor.

A sync route goes through anyio's to_thread (a capacity limiter, a cancel scope, asking
which async library runs, copying the context); on the card payment that hop cost about a
tenth of the request's CPU. A command blocks its thread while the group committer writes
its batch, so the pool is as wide as the commands one process should have in flight.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

IN_FLIGHT = 64
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:  # one per worker process, made in it (never inherited by a fork)
        _pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="command")
    return _pool


async def run_command(fn: Callable[..., T], /, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(fn, **kwargs))

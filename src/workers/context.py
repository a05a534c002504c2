"""What the actors work with: the core, the provider clients, a Redis client for wake-ups.

Built once per worker process on first use, from the settings; tests hand in their own with
`use_context(...)` (clients bound to the in-process simulators, a test Redis).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from infra.bootstrap import Core
from infra.settings import get_settings
from providers.tts import TtsClient


@dataclass
class WorkerContext:
    core: Core
    wechat_pay: Any  # providers.wechatpay.WeChatPayClient
    alipay: Any  # providers.alipay.AlipayClient
    tts: TtsClient
    redis: Redis | None  # for PUBLISH only; None: consoles fall back to polling
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


_context: WorkerContext | None = None
_lock = threading.Lock()


def build_context() -> WorkerContext:
    from api.providers_wiring import build_provider_clients
    from infra.bootstrap import build_core

    settings = get_settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is required (make run sets it)")
    core = build_core(settings, settings.database_url, migrate=False)
    providers = build_provider_clients(settings)
    tts = providers.tts or TtsClient(
        settings.tts_base_url, settings.tts_api_key.get_secret_value() or None, providers.http
    )
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    closers: list[Callable[[], None]] = [core.close, providers.close]
    if redis is not None:
        closers.append(redis.close)
    return WorkerContext(
        core=core,
        wechat_pay=providers.wechat_pay,
        alipay=providers.alipay,
        tts=tts,
        redis=redis,
        closers=closers,
    )


def get_context() -> WorkerContext:
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                _context = build_context()
    return _context


def use_context(context: WorkerContext | None) -> WorkerContext | None:
    """Install `context` (None: build from settings on next use); returns the previous one."""
    global _context
    with _lock:
        previous, _context = _context, context
    return previous

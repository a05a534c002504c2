"""The ASGI app factory: `uvicorn api.main:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import errors, health
from infra.settings import Settings, get_settings


def create_app(core: Any = None, settings: Settings | None = None) -> FastAPI:
    """Tests hand in a built core; a server process builds its own from the settings."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = core is None
        if owned:
            from infra.bootstrap import build_core

            if not settings.database_url:
                raise RuntimeError("DATABASE_URL is required (make run sets it)")
            app.state.core = build_core(settings, settings.database_url, migrate=False)
        else:
            app.state.core = core
        try:
            yield
        finally:
            if owned:
                app.state.core.close()

    app = FastAPI(
        title="Fuel-station ledger",
        version="0.1.0",
        description="Members, station partners, back office and finance over one ledger.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(health.router)
    return app

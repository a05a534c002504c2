"""The ASGI app factory: `uvicorn api.main:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api import (
    admin,
    admin_coupons,
    admin_distribution,
    admin_mall,
    auth,
    card,
    coupons,
    errors,
    finance,
    finance_reconciliation,
    health,
    input_guard,
    mall,
    members,
    openapi_problems,
    orders,
    partner,
    payments,
    referral_poster,
    reports,
    station_events,
    station_webhooks,
    stations,
    tickets,
    withdrawals,
)
from api.gc_tuning import tune_for_serving
from api.providers_wiring import ProviderClients, build_provider_clients
from infra.settings import Settings, get_settings


def create_app(
    core: Any = None, settings: Settings | None = None, providers: ProviderClients | None = None
) -> FastAPI:
    """Tests hand in a built core (and provider clients bound to in-process simulators); a
    server process builds its own from the settings."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = core is None
        if owned:
            from infra.bootstrap import build_core

            if not settings.database_url:
                raise RuntimeError("DATABASE_URL is required (make run sets it)")
            app.state.core = build_core(settings, settings.database_url, migrate=False)
            app.state.core.follow_other_writers()  # the other workers' writes
            tune_for_serving()
        else:
            app.state.core = core
        app.state.providers = providers or build_provider_clients(app.state.core.settings)
        try:
            yield
        finally:
            if providers is None:
                app.state.providers.close()
            if owned:
                app.state.core.close()

    app = FastAPI(
        title="Fuel-station ledger",
        version="0.1.0",
        description="Members, station partners, back office and finance over one ledger.",
        lifespan=lifespan,
    )
    errors.install(app)
    auth.install(app)
    input_guard.install(app)
    # FastAPI tries routes in order: the hottest (orders: create and pay) go first.
    app.include_router(orders.router)
    app.include_router(health.router)
    app.include_router(members.router)
    app.include_router(stations.router)
    app.include_router(card.router)
    app.include_router(payments.router)
    app.include_router(station_events.router)
    app.include_router(station_webhooks.partner_router)
    app.include_router(station_webhooks.admin_router)
    app.include_router(reports.router)
    app.include_router(finance.router)
    app.include_router(finance_reconciliation.router)
    app.include_router(coupons.router)
    app.include_router(referral_poster.router)
    app.include_router(admin_coupons.router)
    app.include_router(partner.router)
    app.include_router(admin.router)
    app.include_router(tickets.router)
    app.include_router(withdrawals.router)
    app.include_router(mall.router)
    app.include_router(admin_distribution.router)
    app.include_router(admin_mall.router)
    openapi_problems.install(app)  # after every router: it completes their descriptions
    return app

"""The API as `make run` serves it, plus one empty POST: the floor of the same server stack,
so the card-payment rate is read against it in the same run.

The empty POST is matched first: FastAPI tries routes in order, and past the app's 100-odd
routes the scan alone costs a few hundred microseconds; a floor must not carry that."""

from __future__ import annotations

from fastapi import FastAPI

from api.main import create_app as create_api


def create_app() -> FastAPI:
    app = create_api()

    @app.post("/bench/empty", include_in_schema=False)
    def empty() -> dict[str, bool]:
        return {"ok": True}

    app.router.routes.insert(0, app.router.routes.pop())
    return app

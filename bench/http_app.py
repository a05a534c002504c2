"""The API as `make run` serves it, plus one empty POST: the floor of the same server stack,
so the card-payment rate is read against it in the same run."""

from __future__ import annotations

from fastapi import FastAPI

from api.main import create_app as create_api


def create_app() -> FastAPI:
    app = create_api()

    @app.post("/bench/empty", include_in_schema=False)
    def empty() -> dict[str, bool]:
        return {"ok": True}

    return app

"""RFC 9457 problem+json for every error, each with a stable `code`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import DomainError

PROBLEM = "application/problem+json"
RESERVED = {"type", "title", "status", "detail", "instance", "code"}


def problem(status: int, code: str, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://errors.fuel-ledger.example/{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class ApiError(Exception):
    """Raised by routers for errors that are not the domain's (auth, missing resources)."""

    def __init__(self, status: int, code: str, title: str, **extra: Any) -> None:
        super().__init__(title)
        self.status, self.code, self.title, self.extra = status, code, title, extra


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        # A detail must not overwrite a member RFC 9457 defines (a `status` detail would).
        details = {
            (f"detail_{k}" if k in RESERVED else k): v
            for k, v in exc.details.items()
            if isinstance(v, (str, int, bool))
        }
        return problem(exc.status, exc.code, str(exc), **details)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.title, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem(422, "invalid_request", "The request is not valid", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail))

    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        return problem(503, "database_unavailable", "The database is not reachable; retry")

    # By class, not only in the catch-all below: Starlette re-raises what the catch-all
    # handled after replying, and uvicorn then drops the keep-alive connection, so the
    # client's next request on it failed with a reset while the database was down.
    import psycopg
    from eventsourcing.persistence import OperationalError as StoreUnavailable

    for unavailable in (psycopg.OperationalError, StoreUnavailable):
        app.add_exception_handler(unavailable, _database_down)

    async def _queue_down(_: Request, exc: Exception) -> JSONResponse:
        # Only work that must start now (an export job) reaches Redis from a request; side
        # effects of commands wait in the outbox instead.
        return problem(503, "queue_unavailable", "The job queue is not reachable; retry")

    import redis

    app.add_exception_handler(redis.ConnectionError, _queue_down)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        import psycopg
        from eventsourcing.persistence import OperationalError
        from psycopg_pool import PoolTimeout

        if isinstance(exc, (psycopg.OperationalError, OperationalError, PoolTimeout)):
            return problem(503, "database_unavailable", "The database is not reachable; retry")
        return problem(500, "internal_error", "Unexpected error")

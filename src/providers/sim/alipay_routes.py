"""HTTP face of the Alipay simulator: `/gateway.do`, statement downloads, `/sim/...` controls
(`POST /sim/auth-codes {"user_id"?, "open_id"?}` mints a sign-in code)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.sim.errors import SimError
from providers.sim.http_util import json_body, own_base_url

if TYPE_CHECKING:
    from providers.sim.alipay_sim import AlipaySim


def build_app(sim: AlipaySim) -> Starlette:
    async def gateway(request: Request) -> Response:
        # Parameters may come in the query string, the form body, or both.
        params = dict(request.query_params)
        body = await request.body()
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        text = await sim.gateway(params, own_base_url(request))
        followups = sim.take_followups()

        async def notify() -> None:
            for followup in followups:
                await followup

        return Response(
            text,
            media_type="application/json; charset=utf-8",
            background=BackgroundTask(notify) if followups else None,
        )

    async def bill(request: Request) -> Response:
        try:
            content = sim.statement(request.path_params["token"])
        except SimError as exc:
            return Response(exc.message, exc.status, media_type="text/plain")
        return Response(content, media_type="application/zip")

    return Starlette(
        routes=[
            Route("/gateway.do", gateway, methods=["GET", "POST"]),
            Route("/bill/{token}", bill),
            *control_routes(sim),
        ]
    )


def control_routes(sim: AlipaySim) -> list[Route]:
    def control(action: Callable[[Request, dict[str, Any]], Awaitable[Any]]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                result = await action(request, await json_body(request, required=False))
            except SimError as exc:
                return JSONResponse({"code": exc.code, "message": exc.message}, 400)
            except (TypeError, ValueError) as exc:
                return JSONResponse({"code": "invalid", "message": str(exc)}, 400)
            return JSONResponse(result)

        return endpoint

    def deliveries(result: list[Any]) -> dict[str, Any]:
        return {"deliveries": [d.as_json() for d in result]}

    async def pay(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(await sim.pay(request.path_params["out_trade_no"], **options))

    async def finish(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(await sim.finish(request.path_params["out_trade_no"], **options))

    async def delivery(request: Request, options: dict[str, Any]) -> Any:
        return dataclasses.asdict(sim.configure_delivery(**options))

    async def release(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(await sim.release(bool(options.get("shuffle")), options.get("seed")))

    async def retry(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(await sim.retry_failed())

    async def fail_next(request: Request, options: dict[str, Any]) -> Any:
        sim.fail_next(**options)
        return {"queued": options}

    async def refunds_notify(request: Request, options: dict[str, Any]) -> Any:
        sim.notify_refunds = bool(options.get("enabled", True))
        return {"notify_refunds": sim.notify_refunds}

    async def history(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(sim.deliveries)

    async def auth_code(request: Request, options: dict[str, Any]) -> Any:
        user_id, open_id = options.get("user_id"), options.get("open_id")
        return sim.mint_auth_code(
            str(user_id) if user_id else None, str(open_id) if open_id else None
        )

    return [
        Route("/sim/trades/{out_trade_no}/pay", control(pay), methods=["POST"]),
        Route("/sim/trades/{out_trade_no}/finish", control(finish), methods=["POST"]),
        Route("/sim/delivery", control(delivery), methods=["GET", "POST"]),
        Route("/sim/release", control(release), methods=["POST"]),
        Route("/sim/retry-failed", control(retry), methods=["POST"]),
        Route("/sim/fail-next", control(fail_next), methods=["POST"]),
        Route("/sim/refund-notifications", control(refunds_notify), methods=["POST"]),
        Route("/sim/deliveries", control(history)),
        Route("/sim/auth-codes", control(auth_code), methods=["POST"]),
    ]

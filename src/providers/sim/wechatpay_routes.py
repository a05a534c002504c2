"""HTTP face of the WeChat Pay simulator: the v3 API paths and the `/sim/...` controls."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.sim.errors import SimError
from providers.sim.http_util import json_body, own_base_url, path_with_query

if TYPE_CHECKING:
    from providers.sim.wechatpay_sim import WeChatPaySim

Result = tuple[dict[str, Any] | None, Callable[[], Awaitable[Any]] | None]
Handler = Callable[[Request], Awaitable[Result]]
TRANSFERS = "/v3/fund-app/mch-transfer/transfer-bills"


def build_app(sim: WeChatPaySim) -> Starlette:
    def signed(
        status: int, payload: dict[str, Any] | None, background: BackgroundTask | None = None
    ) -> Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = sim.sign(body) | {"Request-ID": uuid.uuid4().hex}
        return Response(
            body, status, headers=headers, media_type="application/json", background=background
        )

    def api(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            try:
                sim.verify_request(
                    request.method,
                    path_with_query(request),
                    request.headers.get("authorization", ""),
                    body,
                )
                failure = sim.take_failure()
                if failure is not None:
                    raise failure
                payload, followup = await handler(request)
            except SimError as exc:
                return signed(exc.status, {"code": exc.code, "message": exc.message})
            # Follow-up notifications go out after the reply, as WeChat's are asynchronous.
            task = BackgroundTask(followup) if followup else None
            return signed(200 if payload is not None else 204, payload, task)

        return endpoint

    async def prepay(request: Request) -> Result:
        return {"prepay_id": sim.orders.prepay(await json_body(request)).prepay_id}, None

    async def query_order(request: Request) -> Result:
        if request.query_params.get("mchid") != sim.mchid:
            raise SimError(400, "PARAM_ERROR", "mchid is required and must be ours")
        order = sim.orders.order(request.path_params["out_trade_no"])
        return sim.orders.transaction(order), None

    async def close_order(request: Request) -> Result:
        sim.orders.close(request.path_params["out_trade_no"])
        return None, None

    async def refund(request: Request) -> Result:
        created = sim.orders.create_refund(await json_body(request))
        return sim.orders.refund_resource(created, for_notification=False), None

    async def query_refund(request: Request) -> Result:
        found = sim.orders.refund(request.path_params["out_refund_no"])
        return sim.orders.refund_resource(found, for_notification=False), None

    async def create_transfer(request: Request) -> Result:
        data = await json_body(request)
        user_name = None
        if data.get("user_name"):
            user_name = sim.decrypt_field(
                request.headers.get("wechatpay-serial", ""), str(data["user_name"])
            )
        return sim.transfers.created(sim.transfers.create(data, user_name)), None

    async def query_transfer(request: Request) -> Result:
        transfer = sim.transfers.get(request.path_params["out_bill_no"])
        return sim.transfers.resource(transfer), None

    async def cancel_transfer(request: Request) -> Result:
        out_bill_no = request.path_params["out_bill_no"]
        transfer = sim.transfers.cancel(out_bill_no)
        reply = {
            "out_bill_no": out_bill_no,
            "transfer_bill_no": transfer.transfer_bill_no,
            "state": "CANCELING",
            "update_time": sim.transfers.resource(transfer)["update_time"],
        }

        async def notify_cancelled() -> None:
            await sim.notify_transfer(out_bill_no)

        return reply, notify_cancelled

    async def trade_bill(request: Request) -> Result:
        bill_date = request.query_params.get("bill_date", "")
        if request.query_params.get("bill_type", "ALL") != "ALL" or len(bill_date) != 10:
            raise SimError(400, "PARAM_ERROR", "bill_date=YYYY-MM-DD and bill_type=ALL")
        return sim.trade_bill(bill_date, own_base_url(request)), None

    async def bill_file(request: Request) -> Response:
        try:
            sim.verify_request(
                "GET", path_with_query(request), request.headers.get("authorization", ""), b""
            )
            content = sim.bill_file(request.query_params.get("token", ""))
        except SimError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, exc.status)
        # The file is not signed: its SHA1 travelled in the signed tradebill answer.
        return Response(content, media_type="text/csv; charset=utf-8")

    routes = [
        Route("/v3/pay/transactions/jsapi", api(prepay), methods=["POST"]),
        Route("/v3/pay/transactions/out-trade-no/{out_trade_no}", api(query_order)),
        Route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            api(close_order),
            methods=["POST"],
        ),
        Route("/v3/refund/domestic/refunds", api(refund), methods=["POST"]),
        Route("/v3/refund/domestic/refunds/{out_refund_no}", api(query_refund)),
        Route(TRANSFERS, api(create_transfer), methods=["POST"]),
        Route(TRANSFERS + "/out-bill-no/{out_bill_no}", api(query_transfer)),
        Route(
            TRANSFERS + "/out-bill-no/{out_bill_no}/cancel", api(cancel_transfer), methods=["POST"]
        ),
        Route("/v3/bill/tradebill", api(trade_bill)),
        Route("/v3/billdownload/file", bill_file),
        *control_routes(sim),
    ]
    return Starlette(routes=routes)


def control_routes(sim: WeChatPaySim) -> list[Route]:
    """`/sim/...`: what a tester does by hand (the user pays, a transfer succeeds, ...)."""

    def control(action: Callable[[Request, dict[str, Any]], Awaitable[Any]]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                options = await json_body(request, required=False)
                result = await action(request, options)
            except SimError as exc:
                return JSONResponse({"code": exc.code, "message": exc.message}, exc.status)
            except (TypeError, ValueError) as exc:
                return JSONResponse({"code": "PARAM_ERROR", "message": str(exc)}, 400)
            return JSONResponse(result)

        return endpoint

    def deliveries(result: list[Any]) -> dict[str, Any]:
        return {"deliveries": [d.as_json() for d in result]}

    async def pay(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(await sim.pay(request.path_params["out_trade_no"], **options))

    async def settle_refund(request: Request, options: dict[str, Any]) -> Any:
        status = options.pop("status", "SUCCESS")
        return deliveries(
            await sim.settle_refund(request.path_params["out_refund_no"], status, **options)
        )

    async def confirm_transfer(request: Request, options: dict[str, Any]) -> Any:
        return {"state": sim.confirm_transfer(request.path_params["out_bill_no"])}

    async def finish_transfer(request: Request, options: dict[str, Any]) -> Any:
        success = bool(options.pop("success", True))
        fail_reason = str(options.pop("fail_reason", ""))
        return deliveries(
            await sim.finish_transfer(
                request.path_params["out_bill_no"], success, fail_reason, **options
            )
        )

    async def delivery(request: Request, options: dict[str, Any]) -> Any:
        policy = sim.configure_delivery(**options) if options else sim.notifier.policy
        return dataclasses.asdict(policy)

    async def release(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(await sim.release(bool(options.get("shuffle")), options.get("seed")))

    async def retry(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(await sim.retry_failed())

    async def fail_next(request: Request, options: dict[str, Any]) -> Any:
        sim.fail_next(**options)
        return {"queued": options}

    async def platform_key(request: Request, options: dict[str, Any]) -> Any:
        sim.use_platform_key(str(options.get("serial", "")))
        return {"serial": sim.signing_serial}

    async def history(request: Request, options: dict[str, Any]) -> Any:
        return deliveries(sim.deliveries)

    return [
        Route("/sim/orders/{out_trade_no}/pay", control(pay), methods=["POST"]),
        Route("/sim/refunds/{out_refund_no}/settle", control(settle_refund), methods=["POST"]),
        Route("/sim/transfers/{out_bill_no}/confirm", control(confirm_transfer), methods=["POST"]),
        Route("/sim/transfers/{out_bill_no}/finish", control(finish_transfer), methods=["POST"]),
        Route("/sim/delivery", control(delivery), methods=["GET", "POST"]),
        Route("/sim/release", control(release), methods=["POST"]),
        Route("/sim/retry-failed", control(retry), methods=["POST"]),
        Route("/sim/fail-next", control(fail_next), methods=["POST"]),
        Route("/sim/platform-key", control(platform_key), methods=["POST"]),
        Route("/sim/deliveries", control(history)),
    ]

"""Provider callbacks: verify over the raw bytes, record exactly once, reply fast.

A notification's effect is keyed by the provider's transaction id (or out-refund number),
so duplicates, retries and concurrent deliveries apply once. What cannot be recorded (the
database is down) gets a failure reply, which makes the provider retry later. The commands
run in the thread pool: run on the event loop, one waiting on the database froze every
request of the process.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ledger.errors import NotFound
from providers.errors import NotificationRejected

router = APIRouter(prefix="/v1/payments", tags=["payments"])
log = logging.getLogger("payments")

REFUND_STATES = {
    "REFUND.SUCCESS": "SUCCESS",
    "REFUND.ABNORMAL": "ABNORMAL",
    "REFUND.CLOSED": "CLOSED",
}


# The replies each provider expects (not problem+json, except when the database is down).
_FAIL = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
WECHAT_REPLIES: dict[int | str, dict[str, Any]] = {
    204: {"description": "recorded"},
    401: {
        "description": "not verified: WeChat retries",
        "content": {"application/json": {"schema": _FAIL}},
    },
    "4XX": {"description": "not recordable as sent", "content": _PROBLEM},
    503: {"description": "not recorded now: WeChat retries", "content": _PROBLEM},
}
ALIPAY_REPLIES: dict[int | str, dict[str, Any]] = {
    200: {"description": "`success`: recorded", "content": _TEXT},
    400: {"description": "`failure`: not verified, Alipay retries", "content": _TEXT},
    503: {"description": "not recorded now: Alipay retries", "content": _PROBLEM},
}


def _fail(status: int, message: str) -> Response:
    body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False)
    return Response(body, status_code=status, media_type="application/json")


@router.post("/wechat/notify", status_code=204, responses=WECHAT_REPLIES)
async def wechat_notify(request: Request) -> Response:
    body = await request.body()
    try:
        note = request.app.state.providers.wechat_pay.verify_notification(request.headers, body)
    except NotificationRejected as e:
        log.warning("wechat notification rejected: %s", e.code)
        return _fail(401, f"verification failed: {e.code}")
    orders = request.app.state.core.orders
    r: dict[str, Any] = note.resource
    if note.event_type == "TRANSACTION.SUCCESS" and r.get("trade_state") == "SUCCESS":
        await run_in_threadpool(
            orders.confirm_provider_payment,
            provider="wechat",
            transaction_id=str(r["transaction_id"]),
            out_trade_no=str(r["out_trade_no"]),
            amount_fen=int(r["amount"]["total"]),
        )
    elif note.event_type in REFUND_STATES:
        await run_in_threadpool(
            orders.record_refund_result,
            out_refund_no=str(r["out_refund_no"]),
            state=REFUND_STATES[note.event_type],
            detail=str(r.get("refund_status", "")),
        )
    elif note.event_type == "MCHTRANSFER.BILL.FINISHED":
        await run_in_threadpool(record_transfer_result, request.app.state.core.withdrawals, r)
    else:
        # Types we do not act on (yet) are acknowledged so the provider stops retrying them.
        log.info("wechat notification %s ignored", note.event_type)
    return Response(status_code=204)


def record_transfer_result(withdrawals: Any, r: dict[str, Any]) -> None:
    """A merchant transfer (payout) reached its final state: applied once, by out-bill no."""
    try:
        withdrawals.record_payout_result(
            out_bill_no=str(r["out_bill_no"]),
            state=str(r["state"]),
            transfer_bill_no=r.get("transfer_bill_no"),
            fail_reason=str(r.get("fail_reason", "")),
            amount_fen=int(r["transfer_amount"]) if "transfer_amount" in r else None,
        )
    except NotFound:
        log.warning("transfer %s is not one of our withdrawals", r.get("out_bill_no"))


@router.post("/alipay/notify", response_class=Response, responses=ALIPAY_REPLIES)
async def alipay_notify(request: Request) -> Response:
    # Parsed here, exactly as sent: the signature covers the decoded values.
    form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    try:
        note = request.app.state.providers.alipay.verify_notification(form)
    except NotificationRejected as e:
        log.warning("alipay notification rejected: %s", e.code)
        return Response("failure", media_type="text/plain", status_code=400)
    if note.trade_status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
        # Both can arrive for one trade; the transaction id makes them one effect.
        await run_in_threadpool(
            request.app.state.core.orders.confirm_provider_payment,
            provider="alipay",
            transaction_id=note.trade_no,
            out_trade_no=note.out_trade_no,
            amount_fen=note.total_fen,
        )
    return Response("success", media_type="text/plain")

"""Payouts of approved withdrawals, and the loyalty sweeps: plain functions of the worker
context, which the actors in workers.actors call.

A payout is sent once per out-bill number. The number was fixed when the withdrawal was
approved and stored in its Approved event before anything is sent (PROVIDERS.md: store
out_bill_no before calling). On a timeout, a 5xx or another retryable error the bill may
exist: it is queried by its number; if WeChat has it, that answer counts, and if not the
error is raised so dramatiq sends again, with the same number. A non-retryable refusal means
no bill exists: the payout failed and the hold is released. The provider's final word
(SUCCESS, FAIL, CANCELLED) comes by the MCHTRANSFER.BILL.FINISHED notification, or by the
reconciliation sweep asking for bills that have been quiet too long.

Bank payouts: the worker writes the bank-transfer file row (read.bank_transfers, one per
out-bill number); finance sends the file and records the bank's answer in the back office.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from projections import distribution_queries
from providers.errors import ProviderError
from workers.context import WorkerContext

log = logging.getLogger("workers.payouts")

FINAL_STATES = ("SUCCESS", "FAIL", "CANCELLED")
REMARKS = {"member": "佣金提现", "station": "油站收入提现"}
QUIET_FOR = timedelta(minutes=10)
# WeChat closes a bill the member has not confirmed after about 24 h, and says so.
UNCONFIRMED_FOR = timedelta(hours=25)


def send_payout(
    ctx: WorkerContext, *, withdrawal_id: str, out_bill_no: str, event_id: str | None = None
) -> str:
    """Send one approved payout; returns the state it is in afterwards."""
    service = ctx.core.withdrawals
    w = service.get(UUID(withdrawal_id))
    if w["out_bill_no"] != out_bill_no:
        return "SUPERSEDED"  # a message for an earlier attempt: that bill failed
    if w["state"] != "approved":
        return str(w["provider_state"] or w["state"])  # sent already, or settled
    if w["channel"] == "bank":
        _write_bank_row(ctx, w)
        service.record_payout_sent(
            out_bill_no=out_bill_no, transfer_bill_no=None, provider_state="EXPORTED"
        )
        return "EXPORTED"
    if ctx.wechat_pay is None:
        raise RuntimeError("no WeChat Pay client: payouts wait until one is configured")
    payee = w["payee"]
    try:
        answer = ctx.wechat_pay.create_transfer(
            out_bill_no,
            payee["openid"],
            w["net_fen"],
            REMARKS[w["owner"].split(":")[0]],
            user_name=payee.get("real_name"),
        )
    except ProviderError as exc:
        if not exc.retryable:
            log.warning("payout %s refused by WeChat: %s", out_bill_no, exc)
            service.record_payout_result(
                out_bill_no=out_bill_no, state="FAIL", fail_reason=exc.code
            )
            return "FAIL"
        answer = _bill_or_raise(ctx, out_bill_no, exc)
    return record_answer(ctx, out_bill_no, answer)


def _bill_or_raise(ctx: WorkerContext, out_bill_no: str, error: ProviderError) -> dict[str, Any]:
    """After an unclear answer: the bill as WeChat has it, or the error again (resend later,
    same number)."""
    try:
        return dict(ctx.wechat_pay.query_transfer(out_bill_no))
    except ProviderError as exc:
        if exc.status == 404 or exc.code == "NOT_FOUND":
            raise error from None
        raise


def record_answer(ctx: WorkerContext, out_bill_no: str, answer: dict[str, Any]) -> str:
    state = str(answer.get("state", ""))
    service = ctx.core.withdrawals
    if state in FINAL_STATES:
        service.record_payout_result(
            out_bill_no=out_bill_no,
            state=state,
            transfer_bill_no=answer.get("transfer_bill_no"),
            fail_reason=str(answer.get("fail_reason", "")),
        )
    else:
        service.record_payout_sent(
            out_bill_no=out_bill_no,
            transfer_bill_no=answer.get("transfer_bill_no"),
            provider_state=state,
            package=str(answer.get("package_info", "")),
        )
    return state


def _write_bank_row(ctx: WorkerContext, w: dict[str, Any]) -> None:
    payee = w["payee"]
    with ctx.core.read_pool.connection() as conn:
        conn.execute(
            "INSERT INTO read.bank_transfers (out_bill_no, withdrawal_id, bank_name, "
            "account_name, account_no, amount_fen) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (out_bill_no) DO NOTHING",
            (
                w["out_bill_no"],
                UUID(w["withdrawal_id"]),
                payee["bank_name"],
                payee["account_name"],
                payee["account_no"],
                w["net_fen"],
            ),
        )


def check_payouts(ctx: WorkerContext, now: datetime | None = None) -> dict[str, int]:
    """Reconciliation: approved payouts whose message was lost are sent; WeChat bills quiet
    for a while are asked for their state (a lost notification). A bill waiting for the
    member to confirm is left alone until WeChat should have closed it."""
    now = now or datetime.now(UTC)
    counts = {"sent": 0, "asked": 0}
    for withdrawal_id, out_bill_no, state, channel in distribution_queries.payouts_to_check(
        ctx.core.read_pool, now - QUIET_FOR, now - UNCONFIRMED_FOR
    ):
        try:
            if state == "approved":
                send_payout(ctx, withdrawal_id=str(withdrawal_id), out_bill_no=out_bill_no)
                counts["sent"] += 1
            elif channel == "wechat" and ctx.wechat_pay is not None:
                record_answer(ctx, out_bill_no, ctx.wechat_pay.query_transfer(out_bill_no))
                counts["asked"] += 1
        except ProviderError as exc:  # the next sweep asks again
            log.warning("payout %s not checked: %s", out_bill_no, exc)
    return counts


def loyalty_sweep(ctx: WorkerContext, now: datetime | None = None) -> dict[str, Any]:
    """The periodic jobs of loyalty and distribution; each is a sweep the next one repeats."""
    now = now or datetime.now(UTC)
    core = ctx.core
    return {
        "commission": core.commission.release_commission(now),
        "points": core.points_expiry.expire_points(now),
        "mall_expired": core.mall.expire_due(now),
        "payouts": check_payouts(ctx, now),
    }

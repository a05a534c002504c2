"""Asking a provider for what the mini-program needs to pay: WeChat's signed pay parameters,
or Alipay's trade number. Prepay is idempotent at the provider by out_trade_no."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import Request

from api.errors import ApiError
from ledger.errors import MemberNotFound
from providers.errors import ProviderError

# A member who never signed in with the provider's app is nobody there.
REQUIRED = {
    "wechat": ("wechat_account_required", "WeChat (POST /v1/auth/wechat-login)"),
    "alipay": ("alipay_account_required", "Alipay (POST /v1/auth/alipay-login)"),
}


def provider_pay_params(
    request: Request,
    method: str,
    out_trade_no: str,
    amount_fen: int,
    description: str,
    member_id: UUID,
) -> dict[str, Any]:
    providers = request.app.state.providers
    payer = payer_id(request, method, member_id)
    try:
        if method == "wechat":
            prepay_id = providers.wechat_pay.jsapi_prepay(
                out_trade_no, description, amount_fen, payer
            )
            return {
                "provider": "wechat",
                "out_trade_no": out_trade_no,
                "amount_fen": amount_fen,
                **providers.wechat_pay.mini_program_pay_params(prepay_id),
            }
        trade_no = providers.alipay.trade_create(out_trade_no, amount_fen, description, payer)
        return {
            "provider": "alipay",
            "out_trade_no": out_trade_no,
            "amount_fen": amount_fen,
            "trade_no": trade_no,
        }
    except ProviderError as e:
        status = 503 if e.retryable else 502
        raise ApiError(
            status,
            "provider_unavailable",
            f"{method} did not accept the payment",
            provider_code=e.code,
        ) from e


def payer_id(request: Request, method: str, member_id: UUID) -> str:
    """Who pays at the provider: the member's WeChat openid, or their Alipay user id (from
    an Alipay sign-in: a WeChat openid means nothing to Alipay)."""
    try:
        payer = request.app.state.core.members.payer_ids(member_id).get(method)
    except MemberNotFound:
        raise ApiError(
            409, "member_not_ready", "Sign in again: the member is not set up yet"
        ) from None
    if payer is None:
        code, how = REQUIRED[method]
        raise ApiError(409, code, f"Paying this way needs a sign-in with {how} first")
    return str(payer)

"""Asking a provider for what the mini-program needs to pay: WeChat's signed pay parameters,
or Alipay's trade number. Prepay is idempotent at the provider by out_trade_no."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import Request

from api.errors import ApiError
from projections import order_queries
from providers.errors import ProviderError


def provider_pay_params(
    request: Request,
    method: str,
    out_trade_no: str,
    amount_fen: int,
    description: str,
    member_id: UUID,
) -> dict[str, Any]:
    providers = request.app.state.providers
    openid = order_queries.member_openid(request.app.state.core.read_pool, member_id)
    if openid is None:
        raise ApiError(409, "member_not_ready", "Sign in again: the member is not set up yet")
    try:
        if method == "wechat":
            prepay_id = providers.wechat_pay.jsapi_prepay(
                out_trade_no, description, amount_fen, openid
            )
            return {
                "provider": "wechat",
                "out_trade_no": out_trade_no,
                "amount_fen": amount_fen,
                **providers.wechat_pay.mini_program_pay_params(prepay_id),
            }
        trade_no = providers.alipay.trade_create(out_trade_no, amount_fen, description, openid)
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

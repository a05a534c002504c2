"""Domain errors, each with the stable `code` the API puts in its problem+json."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"
    status = 422

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class InsufficientBalance(DomainError):
    code = "insufficient_balance"


class InvalidAmount(DomainError):
    code = "invalid_amount"


class UnknownHold(DomainError):
    code = "unknown_hold"
    status = 404


class HoldAlreadyExists(DomainError):
    code = "hold_exists"
    status = 409


class IdempotencyConflict(DomainError):
    """The same idempotency key came back with a different request."""

    code = "idempotency_conflict"
    status = 409


class NotFound(DomainError):
    code = "not_found"
    status = 404


class ConcurrencyExhausted(DomainError):
    """Retried on optimistic-concurrency conflicts until the retry budget ran out."""

    code = "busy_retry"
    status = 503


class CouponNotApplicable(DomainError):
    code = "coupon_not_applicable"


class OrderNotPayable(DomainError):
    """The order is expired, already paid, or otherwise past paying."""

    code = "order_not_payable"
    status = 409


class RefundNotAllowed(DomainError):
    code = "refund_not_allowed"
    status = 409


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class InvalidNickname(DomainError):
    code = "invalid_nickname"


class InvalidAvatarUrl(DomainError):
    code = "invalid_avatar_url"


class InvalidPhone(DomainError):
    code = "invalid_phone"


class MemberNotFound(NotFound):
    code = "member_not_found"


class UnknownGrade(DomainError):
    """The station does not sell this fuel grade (or has no price for it yet)."""

    code = "unknown_grade"


class UnknownNozzle(DomainError):
    code = "unknown_nozzle"


class InvalidPrice(DomainError):
    code = "invalid_price"


class InvalidStation(DomainError):
    """A station profile or grade configuration outside what the platform accepts."""

    code = "invalid_station"


class InvalidCouponTemplate(DomainError):
    code = "invalid_coupon_template"


class CouponsExhausted(DomainError):
    """The template's total quantity (or a campaign's coupon budget) is all issued."""

    code = "coupons_exhausted"
    status = 409


class CouponLimitReached(DomainError):
    """The member already holds as many coupons of this template as one member may."""

    code = "coupon_limit_reached"
    status = 409


class CouponNotIssuable(DomainError):
    """The template's validity window has ended, or the member does not exist."""

    code = "coupon_not_issuable"
    status = 409


class InvalidCampaign(DomainError):
    code = "invalid_campaign"


class CampaignBudgetExhausted(DomainError):
    code = "campaign_budget_exhausted"
    status = 409


class ReferralRejected(DomainError):
    """Bad or forged referral code, self-referral, a second referrer, or a cycle."""

    code = "referral_rejected"


# -- distribution, withdrawals and the points mall -------------------------------------------


class CommissionDebtOutstanding(DomainError):
    """Commission clawed back after refunds is still owed: no withdrawal until it is repaid."""

    code = "commission_debt_outstanding"
    status = 409


class WithdrawalNotAllowed(DomainError):
    """Below the minimum, over the daily limit, or not in a state for this step."""

    code = "withdrawal_not_allowed"
    status = 409


class OutOfStock(DomainError):
    code = "out_of_stock"
    status = 409


class GoodsNotAvailable(DomainError):
    """Not published, or not for sale this way."""

    code = "goods_not_available"
    status = 409


class MallOrderNotAllowed(DomainError):
    code = "mall_order_not_allowed"
    status = 409

"""The chart of accounts (DESIGN.md section 2) and the sign convention.

Every leg moves value into (+) or out of (-) an account; an entry's legs sum to zero per
asset. An account's balance is the sum of its legs. Accounts that belong to someone (a
member's card, points, commission; a station's available income) are positive when the
platform owes them value and must never go below zero. Source accounts such as
`provider:wechat` or `platform:marketing` go negative by the value that came in through them
or was given away from them.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

CNY: Final = "CNY"
PTS: Final = "PTS"
ASSETS: Final = (CNY, PTS)

PROVIDER_WECHAT: Final = "provider:wechat"
PROVIDER_ALIPAY: Final = "provider:alipay"
PLATFORM_REVENUE: Final = "platform:revenue"
PLATFORM_MARKETING: Final = "platform:marketing"
POINTS_ISSUED: Final = "points:issued"
PAYOUTS_IN_TRANSIT: Final = "payouts:in_transit"
BANK: Final = "platform:bank"
# Money that arrived but bought nothing (late or duplicate payments) until it is refunded.
SUSPENSE: Final = "platform:suspense"
# What the payment providers kept of a settled statement (their fees): an expense, so it goes
# negative like marketing; a refund's returned fee moves it back.
PROVIDER_FEES: Final = "platform:provider_fees"

HELD_SUFFIX: Final = ":held"


def member_card(member_id: UUID) -> str:
    return f"member:{member_id}:card"


def member_card_bonus(member_id: UUID) -> str:
    return f"member:{member_id}:card_bonus"


def member_points(member_id: UUID) -> str:
    return f"member:{member_id}:points"


def member_commission_pending(member_id: UUID) -> str:
    return f"member:{member_id}:commission:pending"


def member_commission_available(member_id: UUID) -> str:
    return f"member:{member_id}:commission:available"


def station_income(station_id: UUID) -> str:
    return f"station:{station_id}:income"


def station_available(station_id: UUID) -> str:
    return f"station:{station_id}:available"


def station_marketing(station_id: UUID) -> str:
    return f"station:{station_id}:marketing"


def provider(method: str) -> str:
    return f"provider:{method}"


def held(account: str) -> str:
    """Where a two-phase hold parks value until it is posted or voided."""
    return account + HELD_SUFFIX


def owner_of(account: str) -> str:
    """'member:<id>:card' -> 'member:<id>'; platform accounts own themselves."""
    parts = account.split(":")
    if parts[0] in ("member", "station") and len(parts) > 1:
        return f"{parts[0]}:{parts[1]}"
    return parts[0]


def is_owned(account: str) -> bool:
    """Owned balances never go below zero (DESIGN.md invariant 2)."""
    kind = account.split(":", 1)[0]
    if kind == "member":
        return True
    if kind == "station":
        return not account.endswith(":income") and not account.endswith(":marketing")
    return False

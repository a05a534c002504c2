"""What an order looks like in command results."""

from __future__ import annotations

from typing import Any

from ledger.domain.fuel_order import FuelOrder


def order_view(order: FuelOrder) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "out_trade_no": order.out_trade_no,
        "member_id": str(order.member_id),
        "station_id": str(order.station_id),
        "grade": order.grade,
        "nozzle": order.nozzle,
        "amount_fen": order.amount_fen,
        "price_fen_per_litre": order.price_fen_per_litre,
        "volume_ml": order.volume_ml,
        "coupon_id": order.coupon_id,
        "coupon_fen": order.coupon_fen,
        "points_used": order.points_used,
        "points_fen": order.points_fen,
        "payable_fen": order.payable_fen,
        "points_to_earn": order.points_to_earn,
        "status": order.status,
        "method": order.method,
        "expires_at": order.expires_at.isoformat(),
        "refunded_fen": sum(order.refunded.values()),
    }

"""Fuel orders, top-ups, refunds and provider payments that could not be applied.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"

ORDERS = """
CREATE TABLE IF NOT EXISTS read.fuel_orders (
    order_id uuid PRIMARY KEY,
    out_trade_no text NOT NULL UNIQUE,
    member_id uuid NOT NULL,
    station_id uuid NOT NULL,
    grade text NOT NULL,
    nozzle integer NOT NULL,
    amount_fen bigint NOT NULL,
    price_fen_per_litre integer NOT NULL,
    volume_ml bigint NOT NULL,
    coupon_id text,
    coupon_fen bigint NOT NULL,
    points_used bigint NOT NULL,
    points_fen bigint NOT NULL,
    payable_fen bigint NOT NULL,
    points_earned bigint NOT NULL DEFAULT 0,
    status text NOT NULL,
    method text,
    provider_fen bigint NOT NULL DEFAULT 0,
    card_fen bigint NOT NULL DEFAULT 0,
    refunded_fen bigint NOT NULL DEFAULT 0,
    confirmed boolean NOT NULL DEFAULT false,
    provider_transaction text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    paid_at timestamptz,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS fuel_orders_member ON read.fuel_orders (member_id, created_at DESC);
CREATE INDEX IF NOT EXISTS fuel_orders_station ON read.fuel_orders (station_id, created_at DESC);
CREATE INDEX IF NOT EXISTS fuel_orders_open ON read.fuel_orders (expires_at)
    WHERE status IN ('created', 'paying');

CREATE TABLE IF NOT EXISTS read.top_ups (
    top_up_id uuid PRIMARY KEY,
    out_trade_no text NOT NULL UNIQUE,
    member_id uuid NOT NULL,
    method text NOT NULL,
    amount_fen bigint NOT NULL,
    bonus_fen bigint NOT NULL,
    status text NOT NULL,
    provider_transaction text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    paid_at timestamptz,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS top_ups_member ON read.top_ups (member_id, created_at DESC);
CREATE INDEX IF NOT EXISTS top_ups_open ON read.top_ups (expires_at) WHERE status = 'created';

CREATE TABLE IF NOT EXISTS read.refunds (
    refund_id uuid PRIMARY KEY,
    out_refund_no text NOT NULL UNIQUE,
    order_id uuid,
    payment_id uuid,
    provider text,
    provider_fen bigint NOT NULL,
    provider_total_fen bigint NOT NULL,
    out_trade_no text NOT NULL,
    amount_fen bigint NOT NULL,
    reason text NOT NULL,
    requested_by text NOT NULL,
    provider_state text NOT NULL,
    requested_at timestamptz NOT NULL,
    answered_at timestamptz,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_order ON read.refunds (order_id);

-- Payments the provider reported that bought nothing: finance works this list.
CREATE TABLE IF NOT EXISTS read.payment_exceptions (
    payment_id uuid PRIMARY KEY,
    provider text NOT NULL,
    transaction_id text NOT NULL,
    out_trade_no text NOT NULL,
    order_id uuid,
    amount_fen bigint NOT NULL,
    outcome text NOT NULL,
    reason text NOT NULL,
    refund_state text,
    received_at timestamptz NOT NULL,
    position bigint NOT NULL
);
"""


def upgrade() -> None:
    op.execute(ORDERS)


def downgrade() -> None:
    raise NotImplementedError("rebuild read models instead")

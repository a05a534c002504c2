"""Distribution, withdrawals, points lots and the points mall: read models.

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"

DISTRIBUTION = """
CREATE TABLE IF NOT EXISTS read.commissions (
    order_id uuid PRIMARY KEY,
    commission_id uuid NOT NULL UNIQUE,
    referrer uuid NOT NULL,
    referee uuid NOT NULL,
    station_id uuid NOT NULL,
    base_fen bigint NOT NULL,
    rate_bps integer NOT NULL,
    amount_fen bigint NOT NULL,
    clawed_fen bigint NOT NULL DEFAULT 0,
    debt_fen bigint NOT NULL DEFAULT 0,
    state text NOT NULL,
    paid_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    released_at timestamptz,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS commissions_referrer ON read.commissions (referrer, paid_at DESC);
CREATE INDEX IF NOT EXISTS commissions_referee ON read.commissions (referee);
CREATE INDEX IF NOT EXISTS commissions_due ON read.commissions (due_at)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS commissions_paid ON read.commissions (paid_at DESC, order_id DESC);

CREATE TABLE IF NOT EXISTS read.withdrawals (
    withdrawal_id uuid PRIMARY KEY,
    owner text NOT NULL,
    owner_kind text NOT NULL,
    owner_id uuid NOT NULL,
    account text NOT NULL,
    amount_fen bigint NOT NULL,
    fee_fen bigint NOT NULL,
    net_fen bigint NOT NULL,
    channel text NOT NULL,
    payee text NOT NULL,
    state text NOT NULL,
    attempt integer NOT NULL,
    out_bill_no text,
    transfer_bill_no text,
    provider_state text,
    package text,
    reason text NOT NULL DEFAULT '',
    requested_at timestamptz NOT NULL,
    decided_at timestamptz,
    decided_by text,
    sent_at timestamptz,
    paid_at timestamptz,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS withdrawals_owner ON read.withdrawals (owner, requested_at DESC);
CREATE INDEX IF NOT EXISTS withdrawals_state ON read.withdrawals (state, requested_at DESC);
CREATE INDEX IF NOT EXISTS withdrawals_open ON read.withdrawals (updated_at)
    WHERE state IN ('approved', 'sent');

-- Bank payouts: one row per out-bill number, written by the payout worker; finance exports
-- the unexported rows as the bank's transfer file.
CREATE TABLE IF NOT EXISTS read.bank_transfers (
    out_bill_no text PRIMARY KEY,
    withdrawal_id uuid NOT NULL,
    bank_name text NOT NULL,
    account_name text NOT NULL,
    account_no text NOT NULL,
    amount_fen bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    exported_at timestamptz
);

-- Each member's points lots, kept by the wallet's own lot code (projections.distribution).
CREATE TABLE IF NOT EXISTS read.points_lots (
    member_id uuid PRIMARY KEY,
    lots jsonb NOT NULL,
    taken jsonb NOT NULL,
    points bigint NOT NULL,
    next_expiry text,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS points_lots_next_expiry ON read.points_lots (next_expiry)
    WHERE next_expiry IS NOT NULL;
"""

MALL = """
CREATE TABLE IF NOT EXISTS read.mall_categories (
    category_id uuid PRIMARY KEY,
    name text NOT NULL,
    sort integer NOT NULL,
    active boolean NOT NULL,
    position bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS read.mall_goods (
    goods_id uuid PRIMARY KEY,
    stock_id uuid UNIQUE,
    category_id text,
    name text NOT NULL,
    images jsonb NOT NULL,
    description text NOT NULL,
    points_price bigint NOT NULL,
    cash_price_fen bigint NOT NULL,
    published boolean NOT NULL,
    stock integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS mall_goods_listing ON read.mall_goods (updated_at DESC)
    WHERE published;

CREATE TABLE IF NOT EXISTS read.mall_orders (
    order_id uuid PRIMARY KEY,
    out_trade_no text NOT NULL UNIQUE,
    member_id uuid NOT NULL,
    goods_id uuid NOT NULL,
    goods_name text NOT NULL,
    quantity integer NOT NULL,
    points bigint NOT NULL,
    cash_fen bigint NOT NULL,
    delivery text NOT NULL,
    address text NOT NULL,
    status text NOT NULL,
    tracking_no text,
    out_refund_no text,
    reason text,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    paid_at timestamptz,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS mall_orders_member ON read.mall_orders (member_id, created_at DESC);
CREATE INDEX IF NOT EXISTS mall_orders_all ON read.mall_orders (created_at DESC, order_id DESC);
CREATE INDEX IF NOT EXISTS mall_orders_open ON read.mall_orders (expires_at)
    WHERE status = 'awaiting_payment';

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON read.commissions, read.withdrawals,
    read.bank_transfers, read.points_lots, read.mall_categories, read.mall_goods,
    read.mall_orders TO ledger_app;
"""


def upgrade() -> None:
    op.execute(DISTRIBUTION)
    op.execute(MALL)


def downgrade() -> None:
    raise NotImplementedError("rebuild read models instead")

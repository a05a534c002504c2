"""Coupons, coupon templates, campaigns and their gifts (read models).

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"

TERMS = """
    title text NOT NULL,
    kind text NOT NULL,
    amount_off_fen bigint NOT NULL,
    percent_off_bps integer NOT NULL,
    max_discount_fen bigint,
    min_amount_fen bigint NOT NULL,
    grades text[] NOT NULL,
    station_ids uuid[] NOT NULL,
    funder_account text NOT NULL,
    stackable boolean NOT NULL,
"""

COUPONS = f"""
CREATE TABLE IF NOT EXISTS read.coupon_templates (
    template_id uuid PRIMARY KEY,
    key text NOT NULL,
    {TERMS}
    valid_from timestamptz,
    valid_until timestamptz,
    valid_days integer,
    per_member_limit integer,
    total_quantity bigint NOT NULL,
    issued bigint NOT NULL DEFAULT 0 CHECK (issued <= total_quantity),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS coupon_templates_created
    ON read.coupon_templates (created_at DESC, template_id DESC);

-- A6 / M9: one row per issued coupon; state held, locked, redeemed or expired.
CREATE TABLE IF NOT EXISTS read.coupons (
    coupon_id uuid PRIMARY KEY,
    template_id uuid NOT NULL,
    member_id uuid NOT NULL,
    issue_key text NOT NULL,
    source text NOT NULL,
    {TERMS}
    state text NOT NULL CHECK (state IN ('held', 'locked', 'redeemed', 'expired')),
    order_id uuid,
    valid_from timestamptz NOT NULL,
    valid_until timestamptz NOT NULL,
    issued_at timestamptz NOT NULL,
    locked_at timestamptz,
    redeemed_at timestamptz,
    expired_at timestamptz,
    restored integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS coupons_member ON read.coupons (member_id, issued_at DESC, coupon_id);
CREATE INDEX IF NOT EXISTS coupons_template
    ON read.coupons (template_id, issued_at DESC, coupon_id);
CREATE INDEX IF NOT EXISTS coupons_issued ON read.coupons (issued_at DESC, coupon_id DESC);
-- The expiry sweep's candidates.
CREATE INDEX IF NOT EXISTS coupons_due ON read.coupons (valid_until) WHERE state = 'held';

CREATE TABLE IF NOT EXISTS read.campaigns (
    campaign_id uuid PRIMARY KEY,
    key text NOT NULL,
    title text NOT NULL,
    kind text NOT NULL,
    amount_fen bigint NOT NULL,
    budget_fen bigint NOT NULL,
    spent_fen bigint NOT NULL DEFAULT 0 CHECK (spent_fen <= budget_fen),
    template_id uuid,
    max_coupons integer NOT NULL,
    coupons_given integer NOT NULL DEFAULT 0 CHECK (coupons_given <= max_coupons),
    recipients integer NOT NULL DEFAULT 0,
    audience jsonb NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    published_at timestamptz,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_created ON read.campaigns (created_at DESC, campaign_id DESC);

CREATE TABLE IF NOT EXISTS read.campaign_gifts (
    campaign_id uuid NOT NULL,
    member_id uuid NOT NULL,
    amount_fen bigint NOT NULL,
    coupon_id uuid,
    given_at timestamptz NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (campaign_id, member_id)
);
CREATE INDEX IF NOT EXISTS campaign_gifts_member ON read.campaign_gifts (member_id);

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON read.coupon_templates, read.coupons,
    read.campaigns, read.campaign_gifts TO ledger_app;
"""


def upgrade() -> None:
    op.execute(COUPONS)


def downgrade() -> None:
    raise NotImplementedError("rebuild read models instead")

"""Station webhooks (their configuration and the record of deliveries) and members' Alipay ids.

Revision ID: 0012
"""

from alembic import op

revision = "0012"
down_revision = "0011"

WEBHOOKS = """
-- A station's webhook as its Station events set it (projection `stations`). The signing
-- secret is kept sealed with SECRETS_KEY (infra.secrets), as the event carries it.
CREATE TABLE IF NOT EXISTS read.station_webhooks (
    station_id uuid PRIMARY KEY,
    url text NOT NULL,
    secret_sealed text NOT NULL,
    configured_by text NOT NULL,
    configured_at timestamptz NOT NULL,
    position bigint NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON read.station_webhooks TO ledger_app;

-- One row per attempt to deliver an event to a station's webhook (workers.webhooks): what
-- the partner sees at GET .../webhook/deliveries. Written by the worker, not rebuilt.
CREATE TABLE IF NOT EXISTS read.webhook_deliveries (
    delivery_id bigserial PRIMARY KEY,
    event_id uuid NOT NULL,
    station_id uuid NOT NULL,
    event_type text NOT NULL,
    attempt integer NOT NULL,
    url text NOT NULL,
    outcome text NOT NULL,
    status_code integer,
    error text,
    duration_ms integer NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_station
    ON read.webhook_deliveries (station_id, delivery_id DESC);
CREATE INDEX IF NOT EXISTS webhook_deliveries_event ON read.webhook_deliveries (event_id);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON read.webhook_deliveries TO ledger_app;
GRANT USAGE, SELECT ON SEQUENCE read.webhook_deliveries_delivery_id_seq TO ledger_app;
"""

MEMBERS = """
-- A member who signed up in the Alipay mini-program has no WeChat openid.
ALTER TABLE read.members ALTER COLUMN openid DROP NOT NULL;
ALTER TABLE read.members ADD COLUMN IF NOT EXISTS alipay_user_id text;
CREATE UNIQUE INDEX IF NOT EXISTS members_alipay_user_id
    ON read.members (alipay_user_id) WHERE alipay_user_id IS NOT NULL;
"""


def upgrade() -> None:
    op.execute(WEBHOOKS)
    op.execute(MEMBERS)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS read.members_alipay_user_id")
    op.execute("ALTER TABLE read.members DROP COLUMN IF EXISTS alipay_user_id")
    op.execute("DROP TABLE IF EXISTS read.webhook_deliveries")
    op.execute("DROP TABLE IF EXISTS read.station_webhooks")

"""Back office (plain tables, schema office): admins, roles, partner accounts, the append-only
admin log, settings with encrypted secrets, exports, backups, tickets and feedback; and the
shifts read model.

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"

OFFICE = """
CREATE SCHEMA IF NOT EXISTS office;

-- A role is a named set of permissions, each 'resource:action' (api.permissions.CATALOG).
CREATE TABLE IF NOT EXISTS office.roles (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{1,39}$'),
    description text NOT NULL DEFAULT '',
    permissions text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS office.admins (
    admin_id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{3,64}$'),
    display_name text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    role text REFERENCES office.roles (name) ON UPDATE CASCADE,
    is_super boolean NOT NULL DEFAULT false,
    disabled boolean NOT NULL DEFAULT false,
    failed_attempts integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    last_sign_in_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A station's login accounts (P1): each may serve one or more stations.
CREATE TABLE IF NOT EXISTS office.partner_accounts (
    account_id uuid PRIMARY KEY,
    account text NOT NULL UNIQUE CHECK (account ~ '^[A-Za-z0-9_.@-]{3,64}$'),
    name text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    station_ids uuid[] NOT NULL CHECK (cardinality(station_ids) > 0),
    disabled boolean NOT NULL DEFAULT false,
    failed_attempts integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    last_sign_in_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS partner_accounts_stations
    ON office.partner_accounts USING gin (station_ids);

-- Every admin sign-in and every change an admin made (A12). Append-only, like the events.
CREATE TABLE IF NOT EXISTS office.admin_log (
    log_id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    admin_id uuid,
    admin_name text,
    ip text,
    action text NOT NULL,
    resource text NOT NULL,
    target text,
    outcome text NOT NULL,
    before jsonb,
    after jsonb,
    detail jsonb
);
CREATE INDEX IF NOT EXISTS admin_log_at ON office.admin_log (at, log_id);
CREATE INDEX IF NOT EXISTS admin_log_admin ON office.admin_log (admin_id, log_id);
CREATE INDEX IF NOT EXISTS admin_log_resource ON office.admin_log (resource, log_id);

-- One row per settings group (sms, wechat ...): plain values, and the secrets as one Fernet
-- token of a JSON object (infra.secrets), never stored or returned in clear.
CREATE TABLE IF NOT EXISTS office.settings (
    key text PRIMARY KEY,
    value jsonb NOT NULL DEFAULT '{}',
    secrets bytea,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);

CREATE TABLE IF NOT EXISTS office.sms_templates (
    code text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_]{2,64}$'),
    name text NOT NULL,
    content text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A station's own promotions (P7): each is a station-funded coupon template (coupons).
CREATE TABLE IF NOT EXISTS office.station_promotions (
    promotion_id uuid PRIMARY KEY,
    station_id uuid NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    discount_fen bigint NOT NULL CHECK (discount_fen > 0),
    min_amount_fen bigint NOT NULL DEFAULT 0 CHECK (min_amount_fen >= 0),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL CHECK (ends_at > starts_at),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'withdrawn')),
    coupon_template_id uuid,  -- the station-funded template in the coupons context
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS station_promotions_station
    ON office.station_promotions (station_id, starts_at);

CREATE TABLE IF NOT EXISTS office.exports (
    export_id uuid PRIMARY KEY,
    kind text NOT NULL,
    format text NOT NULL CHECK (format IN ('csv', 'xlsx')),
    filters jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    rows_done bigint NOT NULL DEFAULT 0,
    rows_total bigint,
    file_path text,
    size_bytes bigint,
    error text,
    requested_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);

CREATE TABLE IF NOT EXISTS office.backups (
    backup_id uuid PRIMARY KEY,
    file_name text NOT NULL,
    file_path text NOT NULL,
    size_bytes bigint,
    sha256 text,
    server_version integer NOT NULL,
    pg_dump text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'done', 'failed', 'pruned')),
    error text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS backups_started ON office.backups (started_at DESC);

-- Customer service (M15) and feedback (T5).
CREATE TABLE IF NOT EXISTS office.tickets (
    ticket_id uuid PRIMARY KEY,
    member_id uuid NOT NULL,
    order_id uuid,
    subject text NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered', 'closed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz
);
CREATE INDEX IF NOT EXISTS tickets_member ON office.tickets (member_id, created_at DESC);
CREATE INDEX IF NOT EXISTS tickets_status ON office.tickets (status, updated_at DESC);

CREATE TABLE IF NOT EXISTS office.ticket_messages (
    message_id bigserial PRIMARY KEY,
    ticket_id uuid NOT NULL REFERENCES office.tickets (ticket_id),
    author text NOT NULL CHECK (author IN ('member', 'staff')),
    author_id uuid,
    body text NOT NULL,
    image bytea CHECK (octet_length(image) <= 2097152),
    image_type text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ticket_messages_ticket ON office.ticket_messages (ticket_id, message_id);

CREATE TABLE IF NOT EXISTS office.feedback (
    feedback_id uuid PRIMARY KEY,
    member_id uuid NOT NULL,
    rating smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment text NOT NULL DEFAULT '',
    order_id uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS feedback_created ON office.feedback (created_at DESC);

GRANT USAGE ON SCHEMA office TO ledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    office.roles, office.admins, office.partner_accounts, office.settings, office.sms_templates,
    office.station_promotions, office.exports, office.backups, office.tickets,
    office.ticket_messages, office.feedback
TO ledger_app;
REVOKE ALL ON office.admin_log FROM ledger_app;
GRANT SELECT, INSERT ON office.admin_log TO ledger_app;
GRANT USAGE ON SEQUENCE office.admin_log_log_id_seq, office.ticket_messages_message_id_seq
    TO ledger_app;

DROP TRIGGER IF EXISTS admin_log_no_update_delete ON office.admin_log;
CREATE TRIGGER admin_log_no_update_delete BEFORE UPDATE OR DELETE ON office.admin_log
    FOR EACH ROW EXECUTE FUNCTION public.refuse_change();
DROP TRIGGER IF EXISTS admin_log_no_truncate ON office.admin_log;
CREATE TRIGGER admin_log_no_truncate BEFORE TRUNCATE ON office.admin_log
    FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_change();
"""

SHIFTS = """
-- Cashier shifts (P9), from the Shift aggregate's events.
CREATE TABLE IF NOT EXISTS read.shifts (
    shift_id uuid PRIMARY KEY,
    station_id uuid NOT NULL,
    number integer NOT NULL,
    cashier text NOT NULL,
    status text NOT NULL,
    opened_at timestamptz NOT NULL,
    closed_at timestamptz,
    system_fen jsonb,
    counted_fen jsonb,
    difference_fen jsonb,
    order_count integer,
    refund_count integer,
    refunds_fen bigint,
    settled_fen bigint,
    up_to_position bigint,
    position bigint NOT NULL,
    UNIQUE (station_id, number)
);
CREATE INDEX IF NOT EXISTS shifts_station_opened ON read.shifts (station_id, opened_at DESC);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON read.shifts TO ledger_app;
"""


def upgrade() -> None:
    op.execute(OFFICE)
    op.execute(SHIFTS)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS read.shifts")
    op.execute("DROP SCHEMA IF EXISTS office CASCADE")

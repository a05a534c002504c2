"""Members read model; refresh tokens and SMS one-time codes (plain tables, schema auth).

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"

MEMBERS = """
CREATE TABLE IF NOT EXISTS read.members (
    id uuid PRIMARY KEY,
    openid text NOT NULL,
    unionid text,
    nickname text,
    avatar_url text,
    phone text,
    phone_masked text,
    referrer uuid,
    referral_code text,
    joined_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS members_openid ON read.members (openid);
CREATE INDEX IF NOT EXISTS members_joined ON read.members (joined_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS members_phone ON read.members (phone) WHERE phone IS NOT NULL;
CREATE INDEX IF NOT EXISTS members_referrer ON read.members (referrer) WHERE referrer IS NOT NULL;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON read.members TO ledger_app;
"""

AUTH = """
CREATE SCHEMA IF NOT EXISTS auth;

-- Only the sha256 of a refresh token is kept. A token is used once: using it marks it used
-- and issues the next one in its family; a used token coming back revokes the family.
CREATE TABLE IF NOT EXISTS auth.refresh_tokens (
    token_hash bytea PRIMARY KEY,
    family_id uuid NOT NULL,
    owner text NOT NULL,
    role text NOT NULL,
    scope text[] NOT NULL DEFAULT '{}',
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON auth.refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_tokens_owner ON auth.refresh_tokens (role, owner);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires ON auth.refresh_tokens (expires_at);

-- SMS one-time codes: salted hash only; rows older than a day only matter for clean-up.
CREATE TABLE IF NOT EXISTS auth.sms_codes (
    id bigserial PRIMARY KEY,
    phone text NOT NULL,
    purpose text NOT NULL,
    owner text NOT NULL,
    salt bytea NOT NULL,
    code_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    attempts smallint NOT NULL DEFAULT 0,
    consumed_at timestamptz
);
CREATE INDEX IF NOT EXISTS sms_codes_phone ON auth.sms_codes (phone, created_at);
CREATE INDEX IF NOT EXISTS sms_codes_owner ON auth.sms_codes (owner, phone, purpose, id);

GRANT USAGE ON SCHEMA auth TO ledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON auth.refresh_tokens, auth.sms_codes TO ledger_app;
GRANT USAGE ON SEQUENCE auth.sms_codes_id_seq TO ledger_app;
"""


def upgrade() -> None:
    op.execute(MEMBERS)
    op.execute(AUTH)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS auth.sms_codes, auth.refresh_tokens")
    op.execute("DROP TABLE IF EXISTS read.members")

"""Read side: projection tracking, journal lines with the balance trigger, account balances.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"

READ_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS read;

-- Each projector's position, written in the same transaction as its rows.
CREATE TABLE IF NOT EXISTS read.tracking (
    projection text PRIMARY KEY,
    position bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS read.journal_lines (
    position bigint NOT NULL,
    entry_id uuid NOT NULL,
    leg smallint NOT NULL,
    account text NOT NULL,
    asset text NOT NULL,
    amount bigint NOT NULL,
    kind text NOT NULL,
    reverses uuid,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (entry_id, leg)
);
CREATE INDEX IF NOT EXISTS journal_lines_account_position
    ON read.journal_lines (account, asset, position);
CREATE INDEX IF NOT EXISTS journal_lines_position ON read.journal_lines (position);

-- The journal refuses, again in the database, an entry whose legs do not sum to zero.
CREATE OR REPLACE FUNCTION read.check_entry_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM read.journal_lines WHERE entry_id = NEW.entry_id
        GROUP BY asset HAVING sum(amount) <> 0
    ) THEN
        RAISE EXCEPTION 'journal entry % does not balance', NEW.entry_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS journal_entry_balanced ON read.journal_lines;
CREATE CONSTRAINT TRIGGER journal_entry_balanced
    AFTER INSERT ON read.journal_lines
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION read.check_entry_balanced();

CREATE TABLE IF NOT EXISTS read.account_balances (
    account text NOT NULL,
    asset text NOT NULL,
    owner text NOT NULL,
    balance bigint NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (account, asset)
);
CREATE INDEX IF NOT EXISTS account_balances_owner ON read.account_balances (owner);

GRANT USAGE ON SCHEMA read TO ledger_app;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA read TO ledger_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA read
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO ledger_app;
"""


def upgrade() -> None:
    op.execute(READ_SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("rebuild read models instead")

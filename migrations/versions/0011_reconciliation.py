"""Provider statement reconciliation (read models): the ledger's provider payments and
refunds by business day, reconciliation runs and their exceptions.

Revision ID: 0011
"""

from alembic import op

revision = "0011"
down_revision = "0010"

RECONCILIATION = """
-- What the ledger knows of every provider payment (ProviderPayment, whatever its outcome:
-- the money arrived either way) and provider refund (Refund with a provider part). `day` is
-- the business day (CST) the provider should list it on: a payment's day of payment, a
-- refund's day of success; NULL while a refund is not known to have succeeded.
CREATE TABLE IF NOT EXISTS read.provider_movements (
    movement_id uuid PRIMARY KEY,
    provider text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('payment', 'refund')),
    ref text NOT NULL,
    out_trade_no text NOT NULL,
    amount_fen bigint NOT NULL,
    state text NOT NULL,
    day date,
    -- the reconciliation whose statement settled it, and that statement's day
    settled_by uuid,
    settled_on date,
    position bigint NOT NULL,
    UNIQUE (provider, kind, ref)
);
CREATE INDEX IF NOT EXISTS provider_movements_day ON read.provider_movements (provider, day);

CREATE TABLE IF NOT EXISTS read.reconciliations (
    reconciliation_id uuid PRIMARY KEY,
    provider text NOT NULL,
    bill_date date NOT NULL,
    content_sha256 text NOT NULL,
    file_sha256 text NOT NULL,
    source text NOT NULL,
    imported_by text NOT NULL,
    ledger_position bigint NOT NULL,
    lines integer NOT NULL,
    matched integer NOT NULL,
    exceptions integer NOT NULL,
    open_exceptions integer NOT NULL,
    settled_gross_fen bigint NOT NULL,
    settled_net_fen bigint NOT NULL,
    fee_fen bigint NOT NULL,
    totals jsonb NOT NULL,
    settlement_entry_id uuid,
    imported_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL,
    UNIQUE (provider, bill_date)
);
CREATE INDEX IF NOT EXISTS reconciliations_by_date
    ON read.reconciliations (bill_date DESC, reconciliation_id DESC);

CREATE TABLE IF NOT EXISTS read.reconciliation_exceptions (
    exception_id uuid PRIMARY KEY,
    reconciliation_id uuid NOT NULL,
    provider text NOT NULL,
    bill_date date NOT NULL,
    kind text NOT NULL,
    line_kind text NOT NULL,
    ref text NOT NULL,
    out_trade_no text NOT NULL,
    provider_fen bigint,
    ledger_fen bigint,
    detail text NOT NULL,
    state text NOT NULL CHECK (state IN ('open', 'resolved')),
    note text,
    resolved_by text,
    resolved_at timestamptz,
    created_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS reconciliation_exceptions_state
    ON read.reconciliation_exceptions (state, created_at DESC, exception_id DESC);
CREATE INDEX IF NOT EXISTS reconciliation_exceptions_run
    ON read.reconciliation_exceptions (reconciliation_id, created_at DESC, exception_id DESC);

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON read.provider_movements,
    read.reconciliations, read.reconciliation_exceptions TO ledger_app;
"""


def upgrade() -> None:
    op.execute(RECONCILIATION)


def downgrade() -> None:
    raise NotImplementedError("rebuild read models instead")

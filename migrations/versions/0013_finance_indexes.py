"""Finance's journal queries: an account's class as a function, the journal lines by class in
log order, and the entries that reverse an entry.

Revision ID: 0013
"""

from alembic import op

revision = "0013"
down_revision = "0012"

# An account's class stars its owner's id: member:<id>:card -> member:*:card (the trial
# balance's and the balance sheet's rows, the journal's `account=member:*:card`). Plain string
# functions, not regexp_replace: over 68,000 accounts (a million events) the regular
# expression added 0.7 s to each class-level trial balance or balance sheet, these add nothing
# measurable. A one-expression immutable SQL function (not STRICT) is inlined by the planner,
# so the index below serves the queries that call it.
ACCOUNT_CLASS = r"""
CREATE OR REPLACE FUNCTION read.account_class(account text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN left(account, 7) = 'member:' OR left(account, 8) = 'station:' THEN
            split_part(account, ':', 1) || ':*' || substr(account,
                length(split_part(account, ':', 1)) + length(split_part(account, ':', 2)) + 2)
        WHEN left(account, 25) = 'platform:commission_debt:' THEN
            'platform:commission_debt:*'
                || substr(account, 26 + length(split_part(account, ':', 3)))
        ELSE account
    END
$$;
GRANT EXECUTE ON FUNCTION read.account_class(text) TO ledger_app;
"""

# `GET /v1/finance/journal?account=member:*:card` reads one range of this index in (position,
# leg) order, however rare the class. Exact accounts use journal_lines_account_position (0002).
INDEXES = """
CREATE INDEX IF NOT EXISTS journal_lines_class_position
    ON read.journal_lines (read.account_class(account), position, leg);
CREATE INDEX IF NOT EXISTS journal_lines_reverses ON read.journal_lines (reverses)
    WHERE reverses IS NOT NULL;
"""


def upgrade() -> None:
    op.execute(ACCOUNT_CLASS)
    op.execute(INDEXES)


def downgrade() -> None:
    op.execute(
        "DROP INDEX IF EXISTS read.journal_lines_class_position; "
        "DROP INDEX IF EXISTS read.journal_lines_reverses; "
        "DROP FUNCTION IF EXISTS read.account_class(text);"
    )

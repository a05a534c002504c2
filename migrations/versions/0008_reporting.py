"""Reporting read models: station figures and customer habits, platform figures; a journal
balance check that works in any schema and costs one query per statement.

Revision ID: 0008
"""

from alembic import op

revision = "0008"
down_revision = "0007"

# The row trigger of 0002 ran one query per journal line and named read.journal_lines in its
# body, so in a rebuild's shadow schema it checked the wrong table. A statement trigger over
# the transition table checks every entry a statement (a projector's COPY of a page) wrote,
# with one grouped query, wherever the table lives. Entries are written whole by one
# statement, as the journal projector does.
JOURNAL_CHECK = """
CREATE OR REPLACE FUNCTION read.check_entries_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad uuid;
BEGIN
    SELECT entry_id INTO bad FROM new_lines
        GROUP BY entry_id, asset HAVING sum(amount) <> 0 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'journal entry % does not balance', bad
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS journal_entry_balanced ON read.journal_lines;
CREATE TRIGGER journal_entry_balanced
    AFTER INSERT ON read.journal_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION read.check_entries_balanced();

-- As-of an instant and monthly statements filter lines by time; lines arrive in time order,
-- so a block-range index is enough and costs next to nothing to keep or rebuild.
CREATE INDEX IF NOT EXISTS journal_lines_occurred
    ON read.journal_lines USING brin (occurred_at);
"""

STATION_FIGURES = """
-- What the figures need of each order, kept by the station_figures projector itself (the
-- Paid and Refunded events do not name the station, grade or member).
CREATE TABLE IF NOT EXISTS read.order_facts (
    order_id uuid PRIMARY KEY,
    station_id uuid NOT NULL,
    member_id uuid NOT NULL,
    grade text NOT NULL,
    amount_fen bigint NOT NULL,
    method text,
    paid_at timestamptz,
    position bigint NOT NULL
);

-- P3: per station, business day (Asia/Shanghai), grade and payment method. Sales count on
-- the day they were paid, refunds on the day they were made.
CREATE TABLE IF NOT EXISTS read.station_daily (
    station_id uuid NOT NULL,
    day date NOT NULL,
    grade text NOT NULL,
    method text NOT NULL,
    orders integer NOT NULL DEFAULT 0,
    amount_fen bigint NOT NULL DEFAULT 0,
    discount_fen bigint NOT NULL DEFAULT 0,
    fee_fen bigint NOT NULL DEFAULT 0,
    income_fen bigint NOT NULL DEFAULT 0,
    refunds integer NOT NULL DEFAULT 0,
    refunded_fen bigint NOT NULL DEFAULT 0,
    refunded_fee_fen bigint NOT NULL DEFAULT 0,
    refunded_income_fen bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (station_id, day, grade, method)
);

-- P8: paid orders by hour of the day, and how many were a member's first at the station.
CREATE TABLE IF NOT EXISTS read.station_hours (
    station_id uuid NOT NULL,
    day date NOT NULL,
    hour smallint NOT NULL CHECK (hour BETWEEN 0 AND 23),
    orders integer NOT NULL DEFAULT 0,
    amount_fen bigint NOT NULL DEFAULT 0,
    first_orders integer NOT NULL DEFAULT 0,
    PRIMARY KEY (station_id, day, hour)
);

CREATE TABLE IF NOT EXISTS read.station_customers (
    station_id uuid NOT NULL,
    member_id uuid NOT NULL,
    visits integer NOT NULL,
    amount_fen bigint NOT NULL,
    first_at timestamptz NOT NULL,
    last_at timestamptz NOT NULL,
    PRIMARY KEY (station_id, member_id)
);
CREATE INDEX IF NOT EXISTS station_customers_last ON read.station_customers (station_id, last_at);

CREATE TABLE IF NOT EXISTS read.station_customer_grades (
    station_id uuid NOT NULL,
    member_id uuid NOT NULL,
    grade text NOT NULL,
    visits integer NOT NULL,
    PRIMARY KEY (station_id, member_id, grade)
);
"""

PLATFORM_FIGURES = """
-- A13: the whole platform by business day.
CREATE TABLE IF NOT EXISTS read.platform_daily (
    day date PRIMARY KEY,
    orders integer NOT NULL DEFAULT 0,
    amount_fen bigint NOT NULL DEFAULT 0,
    discount_fen bigint NOT NULL DEFAULT 0,
    fee_fen bigint NOT NULL DEFAULT 0,
    refunds integer NOT NULL DEFAULT 0,
    refunded_fen bigint NOT NULL DEFAULT 0,
    refunded_fee_fen bigint NOT NULL DEFAULT 0,
    new_members integer NOT NULL DEFAULT 0,
    top_ups integer NOT NULL DEFAULT 0,
    top_up_fen bigint NOT NULL DEFAULT 0,
    top_up_bonus_fen bigint NOT NULL DEFAULT 0
);

-- P4 and A4 filter a station's orders by date and status; statements list refunds by order.
CREATE INDEX IF NOT EXISTS fuel_orders_created ON read.fuel_orders (created_at DESC, order_id);

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON read.order_facts, read.station_daily,
    read.station_hours, read.station_customers, read.station_customer_grades,
    read.platform_daily TO ledger_app;
"""


def upgrade() -> None:
    op.execute(JOURNAL_CHECK)
    op.execute(STATION_FIGURES)
    op.execute(PLATFORM_FIGURES)


def downgrade() -> None:
    raise NotImplementedError("rebuild read models instead")

"""Event store, command receipts, hash chain; append-only by trigger; least-privileged role.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None

# Printed from the eventsourcing recorder's create_table_statements (9.5.6), then owned here.
EVENT_STORE = """
CREATE TABLE IF NOT EXISTS public.ledger_events (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version)
) WITH (
    autovacuum_enabled = true,
    autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01
);
DO $$ BEGIN
    CREATE TYPE public.stored_event_uuid AS (
        originator_id uuid, originator_version bigint, topic text, state bytea);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_events_notification_id_idx
    ON public.ledger_events (notification_id ASC);

-- One row per command, written in the same transaction as its events: a retried command
-- collides here and gets the first result back.
CREATE TABLE IF NOT EXISTS public.ledger_receipts (
    command_id uuid PRIMARY KEY,
    fingerprint text NOT NULL,
    result jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE SCHEMA IF NOT EXISTS audit;
-- hash(n) = sha256(hash(n-1) || canonical bytes of notification n); sealed continuously.
CREATE TABLE IF NOT EXISTS audit.chain (
    notification_id bigint PRIMARY KEY,
    hash bytea NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now()
);
"""

# The API role may not lock the table itself (EXCLUSIVE needs UPDATE privilege), so the
# gap-free insert lock is taken through this owner-run function.
LOCK_FUNCTION = """
CREATE OR REPLACE FUNCTION public.ledger_lock_events() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    LOCK TABLE public.ledger_events IN EXCLUSIVE MODE;
END $$;
"""

# One command batch in one statement, so one round trip: take the gap-free lock, wake the
# listeners, write the receipts and the events. (The library's pipelined insert costs five
# round trips: BEGIN, statements, sync, COMMIT, pipeline exit.) Same lock and NOTIFY as the
# stock recorder, so this is not the library's lock-free POSTGRES_ENABLE_DB_FUNCTIONS mode.
APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION public.ledger_append(
    ids uuid[], versions bigint[], topics text[], states bytea[],
    command_ids uuid[], fingerprints text[], results text[]
) RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public SET lock_timeout = '5s' AS $$
BEGIN
    LOCK TABLE public.ledger_events IN EXCLUSIVE MODE;
    NOTIFY ledger_events;
    INSERT INTO public.ledger_receipts (command_id, fingerprint, result)
        SELECT c, f, r::jsonb FROM unnest(command_ids, fingerprints, results) AS u(c, f, r);
    RETURN QUERY
        INSERT INTO public.ledger_events (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(ids, versions, topics, states)
        RETURNING notification_id;
END $$;
"""

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION public.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'append-only table %.%: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
"""

APPEND_ONLY_TABLES = ["public.ledger_events", "public.ledger_receipts", "audit.chain"]

ROLE = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ledger_app') THEN
        CREATE ROLE ledger_app LOGIN;
    END IF;
END $$;
GRANT USAGE ON SCHEMA public, audit TO ledger_app;
REVOKE ALL ON public.ledger_events, public.ledger_receipts, audit.chain FROM ledger_app;
GRANT SELECT, INSERT ON public.ledger_events, public.ledger_receipts, audit.chain TO ledger_app;
GRANT USAGE ON SEQUENCE public.ledger_events_notification_id_seq TO ledger_app;
REVOKE ALL ON FUNCTION public.ledger_lock_events() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.ledger_lock_events() TO ledger_app;
REVOKE ALL ON FUNCTION public.ledger_append(uuid[], bigint[], text[], bytea[], uuid[], text[],
    text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.ledger_append(uuid[], bigint[], text[], bytea[], uuid[], text[],
    text[]) TO ledger_app;
"""


def _triggers(table: str) -> str:
    name = table.split(".")[1]
    return f"""
DROP TRIGGER IF EXISTS {name}_no_update_delete ON {table};
CREATE TRIGGER {name}_no_update_delete BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION public.refuse_change();
DROP TRIGGER IF EXISTS {name}_no_truncate ON {table};
CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_change();
"""


def upgrade() -> None:
    op.execute(EVENT_STORE)
    op.execute(LOCK_FUNCTION)
    op.execute(APPEND_FUNCTION)
    op.execute(APPEND_ONLY)
    for table in APPEND_ONLY_TABLES:
        op.execute(_triggers(table))
    op.execute(ROLE)


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only: restore a backup instead")

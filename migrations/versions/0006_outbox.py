"""The outbox of side effects, the record of effects done, and the stations' message feed.

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"

OUTBOX = """
-- One row per event that asks for a side effect, keyed by the event's own id; the relay
-- hands unsent rows to dramatiq in log order and stamps sent_at in the same transaction.
CREATE TABLE IF NOT EXISTS read.outbox (
    event_id uuid PRIMARY KEY,
    position bigint NOT NULL,
    actor text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON read.outbox (position) WHERE sent_at IS NULL;

-- Effects that must happen once per event (a station's voice broadcast): claimed before,
-- stamped done after; a claim never finished is taken over once it is older than the
-- actor's time limit.
CREATE TABLE IF NOT EXISTS read.side_effects (
    event_id uuid NOT NULL,
    actor text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz,
    PRIMARY KEY (event_id, actor)
);

-- What a station's console is told (M6): one row per paid order, streamed by seq.
CREATE TABLE IF NOT EXISTS read.station_messages (
    message_id uuid PRIMARY KEY,
    station_id uuid NOT NULL,
    order_id uuid NOT NULL,
    text text NOT NULL,
    amount_fen bigint NOT NULL,
    audio bytea,
    audio_type text,
    created_at timestamptz NOT NULL DEFAULT now(),
    seq bigserial NOT NULL
);
CREATE INDEX IF NOT EXISTS station_messages_feed ON read.station_messages (station_id, seq);

GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
    ON read.outbox, read.side_effects, read.station_messages TO ledger_app;
GRANT USAGE, SELECT ON SEQUENCE read.station_messages_seq_seq TO ledger_app;

-- A database with history starts its outbox at today's head: old payments are not
-- broadcast to stations again, old refunds are not sent again.
INSERT INTO read.tracking (projection, position)
SELECT 'outbox', coalesce(max(notification_id), 0) FROM public.ledger_events
ON CONFLICT (projection) DO NOTHING;
"""


def upgrade() -> None:
    op.execute(OUTBOX)


def downgrade() -> None:
    raise NotImplementedError("rebuild read models instead")

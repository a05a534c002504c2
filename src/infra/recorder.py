"""The event-store recorder: the library's gap-safe insert, with receipts, in one round trip.

Kept from the stock PostgresApplicationRecorder: the EXCLUSIVE table lock that makes commit
order equal notification order, and the NOTIFY that wakes projection runners. Changed: a
batch is one call of the owner-run function `ledger_append` (migration 0001), which takes the
lock (the application role has no UPDATE privilege, which LOCK TABLE would need), writes each
command's receipt and the events in the same transaction, from binary arrays instead of a
composite array that psycopg encodes in pure Python. The library's own pipelined path costs
five round trips per batch. Tracking records (the library's process applications) are not
written here: our projectors track their positions in the read schema.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from ledger.commands import Receipt


class LedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        # The backends this process has appended through: their notifications are its own
        # writes (infra.cache_follower ignores them).
        self.own_pids: set[int] = set()
        self._append = SQL(
            "SELECT n FROM {0}.ledger_append("
            "%b::uuid[], %b::bigint[], %b::text[], %b::bytea[], %b::uuid[], %b::text[], "
            "%b::text[]) AS n"
        ).format(Identifier(datastore.schema))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        receipts: Sequence[Receipt] = (),
        tracking: Tracking | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        if tracking is not None:
            raise ValueError("the ledger recorder writes no tracking records")
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            self.own_pids.add(conn.info.backend_pid)
            curs.execute(
                self._append,
                (
                    [e.originator_id for e in stored_events],
                    [e.originator_version for e in stored_events],
                    [e.topic for e in stored_events],
                    [e.state for e in stored_events],
                    [r.command_id for r in receipts],
                    [r.fingerprint for r in receipts],
                    [json.dumps(r.result, default=str) for r in receipts],
                ),
                prepare=True,
            )
            return [row["n"] for row in curs.fetchall()]

    def find_taken(
        self, keys: Sequence[tuple[UUID, int]], command_ids: Sequence[UUID]
    ) -> tuple[set[tuple[UUID, int]], dict[UUID, Receipt]]:
        """Which of these event positions and command receipts are already written."""
        schema = Identifier(self.datastore.schema)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT e.originator_id, e.originator_version FROM {0}.{1} e "
                    "JOIN unnest(%b::uuid[], %b::bigint[]) AS k(i, v) "
                    "ON e.originator_id = k.i AND e.originator_version = k.v"
                ).format(schema, Identifier(self.events_table_name)),
                ([k[0] for k in keys], [k[1] for k in keys]),
            )
            taken = {(row["originator_id"], row["originator_version"]) for row in curs}
            curs.execute(
                SQL(
                    "SELECT command_id, fingerprint, result FROM {0}.ledger_receipts "
                    "WHERE command_id = ANY(%b::uuid[])"
                ).format(schema),
                (list(command_ids),),
            )
            earlier = {
                row["command_id"]: Receipt(row["command_id"], row["fingerprint"], row["result"])
                for row in curs
            }
        return taken, earlier

    def find_receipt(self, command_id: UUID) -> Receipt | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT fingerprint, result FROM {0}.ledger_receipts WHERE command_id = %s"
                ).format(Identifier(self.datastore.schema)),
                (command_id,),
            )
            row = curs.fetchone()
        if row is None:
            return None
        return Receipt(command_id, row["fingerprint"], row["result"])

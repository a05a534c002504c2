"""The event-store recorder: the library's gap-safe insert, with receipts and binary arrays.

Kept from the stock PostgresApplicationRecorder: the EXCLUSIVE table lock that makes commit
order equal notification order, and the NOTIFY that wakes projection runners. Changed: the
lock is taken through an owner-run function (the application role has no UPDATE privilege,
which LOCK TABLE would need); each command's receipt goes in the same transaction; events are
sent as four binary arrays instead of a composite array that psycopg encodes in pure Python.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.commands import Receipt


class LedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.lock_table_statements = [
            SQL("SET LOCAL lock_timeout = '{0}s'").format(datastore.lock_timeout),
            SQL("SELECT {0}.ledger_lock_events()").format(Identifier(datastore.schema)),
        ]
        self._insert_arrays = SQL(
            "INSERT INTO {0}.{1} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(Identifier(datastore.schema), Identifier(events_table_name))
        self._insert_receipts = SQL(
            "INSERT INTO {0}.ledger_receipts (command_id, fingerprint, result) "
            "SELECT c, f, r::jsonb FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS u(c, f, r)"
        ).format(Identifier(datastore.schema))

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        receipts: Sequence[Receipt] = (),
        **_: Any,
    ) -> None:
        # Lock first, so that two transactions racing on one receipt cannot deadlock.
        self._lock_table(curs)
        self._notify_channel(curs)
        if receipts:
            curs.execute(
                self._insert_receipts,
                (
                    [r.command_id for r in receipts],
                    [r.fingerprint for r in receipts],
                    [json.dumps(r.result, default=str) for r in receipts],
                ),
            )

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        curs.execute(
            self._insert_arrays,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            prepare=True,
        )

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

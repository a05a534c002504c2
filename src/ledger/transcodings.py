"""How journal entries are stored inside events."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Transcoding

from ledger.journal import JournalEntry


class JournalEntryAsDict(Transcoding):
    type = JournalEntry
    name = "journal_entry"

    def encode(self, obj: JournalEntry) -> dict[str, Any]:
        return obj.to_dict()

    def decode(self, data: dict[str, Any]) -> JournalEntry:
        # Decoding re-runs the balance check: an unbalanced entry cannot even be read back.
        return JournalEntry.from_dict(data)

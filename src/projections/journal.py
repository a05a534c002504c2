"""Journal lines and account balances, from every event that carries a journal entry."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import cache
from typing import Any

from eventsourcing.utils import resolve_topic
from psycopg import Cursor

from ledger.accounts import owner_of
from ledger.journal import JournalEntry
from projections.framework import Envelope, Projector


@cache
def carries_entry(topic: str) -> bool:
    """Whether events of this topic can carry a journal entry (an `entry` field); a topic
    that does not resolve is decoded and looked at, to be safe."""
    try:
        cls = resolve_topic(topic)
    except Exception:  # noqa: BLE001 - unknown or moved topic
        return True
    fields = set(inspect.signature(cls.__init__).parameters)
    for klass in cls.__mro__:
        fields.update(getattr(klass, "__annotations__", {}))
    return "entry" in fields


class JournalProjector(Projector):
    name = "journal"
    schema_aware = True

    def wants(self, topic: str) -> bool:
        # Only events that can move value are decoded: most of a rebuild's time is decoding.
        return carries_entry(topic)

    def tables(self) -> Sequence[str]:
        return ("read.journal_lines", "read.account_balances")

    def apply(self, cur: Cursor[Any], envelopes: Sequence[Envelope]) -> None:
        lines = []
        deltas: dict[tuple[str, str], list[int]] = {}
        for env in envelopes:
            entry = getattr(env.event, "entry", None)
            if not isinstance(entry, JournalEntry):
                continue
            for i, leg in enumerate(entry.legs):
                lines.append(
                    (
                        env.position,
                        entry.id,
                        i,
                        leg.account,
                        leg.asset,
                        leg.amount,
                        entry.kind,
                        entry.reverses,
                        env.event.timestamp,
                    )
                )
                slot = deltas.setdefault((leg.account, leg.asset), [0, 0])
                slot[0] += leg.amount
                slot[1] = env.position
        if not lines:
            return
        with cur.copy(
            "COPY journal_lines (position, entry_id, leg, account, asset, amount, kind, "
            "reverses, occurred_at) FROM STDIN"
        ) as copy:
            for line in lines:
                copy.write_row(line)
        keys = sorted(deltas)
        cur.execute(
            "INSERT INTO account_balances AS b (account, asset, owner, balance, position) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[]) "
            "ON CONFLICT (account, asset) DO UPDATE "
            "SET balance = b.balance + EXCLUDED.balance, position = EXCLUDED.position",
            (
                [a for a, _ in keys],
                [s for _, s in keys],
                [owner_of(a) for a, _ in keys],
                [deltas[k][0] for k in keys],
                [deltas[k][1] for k in keys],
            ),
        )

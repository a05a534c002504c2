"""Balances from the raw log alone: read the stored events that carry a journal entry and sum
their legs; no read model, no projector and no domain class is involved.

Finance runs this to check the read models (DESIGN.md invariant 5); tests use it too. It is
fast because it reads only what it needs: PostgreSQL hands over only the rows whose stored
bytes contain the transcoder's journal-entry tag (a superset of the events that carry one),
in windows of positions through a binary cursor, and each row is one `json.loads` of the
stored JSON, no event object built. An entry is the transcoder's
`{"_type_": "journal_entry", "_data_": {"id", "kind", "legs": [[account, asset, amount]]}}`
under the event's `entry` attribute (ledger.transcodings).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from psycopg.rows import tuple_row

Balances = dict[tuple[str, str], int]
ENTRY_TAG = b'"journal_entry"'
PAGE = 50_000  # positions per window
_ROWS = (
    "SELECT notification_id, state FROM public.ledger_events "
    "WHERE notification_id > %s AND notification_id <= %s AND position(%s IN state) > 0"
)


@dataclass
class Replayed:
    """What the log says: balances at each stop position asked for, and at the end."""

    head: int
    balances: Balances
    at: dict[int, Balances] = field(default_factory=dict)
    entries: int = 0  # events that carried an entry
    unbalanced: list[tuple[int, str]] = field(default_factory=list)  # (position, entry id)


def entry_of(state: bytes) -> dict[str, Any] | None:
    """The journal entry a stored event carries (its `_data_`), or None."""
    entry = json.loads(state).get("entry")
    if type(entry) is dict and entry.get("_type_") == "journal_entry":
        data: dict[str, Any] = entry["_data_"]
        return data
    return None


def _add(replayed: Replayed, rows: Iterable[tuple[int, bytes]]) -> None:
    balances = replayed.balances
    get = balances.get
    for position, state in rows:
        entry = entry_of(state)
        if entry is None:
            continue
        replayed.entries += 1
        sums: dict[str, int] = {}
        for account, asset, amount in entry["legs"]:
            key = (account, asset)
            balances[key] = get(key, 0) + amount
            sums[asset] = sums.get(asset, 0) + amount
        if any(sums.values()):  # the event constructor refuses these; the log is checked anyway
            replayed.unbalanced.append((position, entry["id"]))


def head_position(conn: psycopg.Connection[Any]) -> int:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT coalesce(max(notification_id), 0) FROM public.ledger_events")
        return int(row.fetchone()[0])  # type: ignore[index]


def replay_log(
    conn: psycopg.Connection[Any],
    upto: int | None = None,
    *,
    stops: Sequence[int] = (),
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> Replayed:
    """Sum every entry's legs up to position `upto` (default: the head), keeping a copy of
    the balances at each of `stops`. `progress` is told how many positions each window
    covered. Run it inside a repeatable-read transaction to read one snapshot."""
    head = head_position(conn) if upto is None else upto
    replayed = Replayed(head, {})
    bounds = sorted({s for s in stops if 0 <= s < head} | {head})
    position = 0
    with conn.cursor(binary=True, row_factory=tuple_row) as cur:
        for stop in bounds:
            while position < stop:
                last = min(position + page, stop)
                cur.execute(_ROWS, (position, last, ENTRY_TAG))
                _add(replayed, cur.fetchall())
                if progress:
                    progress(last - position)
                position = last
            replayed.at[stop] = dict(replayed.balances)
    for stop in stops:  # a stop at or past the head sees the whole log
        if stop not in replayed.at:
            replayed.at[stop] = replayed.at.get(head, {}) if stop >= head else {}
    return replayed


def replay_balances(app: Application[UUID], page: int = PAGE) -> Balances:
    """Every (account, asset) balance the whole log adds up to (zeros included)."""
    with app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        return replay_log(conn, page=page).balances

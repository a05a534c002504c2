"""The journal projection for the bulk phase of a rebuild: the same rows as
JournalProjector.apply, from raw events (see projections.raw) written as COPY text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor

from ledger.accounts import ASSETS, owner_of
from ledger.journal import UnbalancedEntry
from projections.raw import NULL, RawEvent, copy_lines, entry_of, merge_rows, text

LINE_COLUMNS = (
    "position",
    "entry_id",
    "leg",
    "account",
    "asset",
    "amount",
    "kind",
    "reverses",
    "occurred_at",
)
BALANCE_COLUMNS = ("account", "asset", "owner", "balance", "position")
_BALANCES = "balance = t.balance + EXCLUDED.balance, position = EXCLUDED.position"


def bad_leg(account: str, asset: str, amount: Any) -> UnbalancedEntry:
    return UnbalancedEntry(f"bad leg {[account, asset, amount]!r}")


class JournalFold:
    # Keeping journal_lines' key and balance trigger up to date row by row would cost more
    # than the COPY: this fold checks each entry itself (check_entry), and the shadow gets
    # them after the bulk phase.
    appends_only = ("journal_lines",)
    cost = 17.0  # see bulk.cost_of

    def __init__(self, projector: Any, app: Any, complete: bool) -> None:
        self.accounts: dict[str, str] = {}  # account -> its COPY text, once checked
        self.deltas: dict[tuple[str, str], list[int]] = {}  # (account, asset) -> change, position
        # Every balance's key in the table, when it began empty (see raw.merge_rows).
        self.balances: set[tuple[Any, ...]] | None = set() if complete else None

    def feed(self, cur: Cursor[Any], events: Sequence[RawEvent]) -> None:
        lines: list[str] = []
        for event in events:
            entry = entry_of(event.data)
            if entry is not None:
                self._entry(entry, event, lines, self.deltas)
        if lines:  # written at once: the lines are never read back or changed
            copy_lines(cur, "journal_lines", LINE_COLUMNS, lines)

    def flush(self, cur: Cursor[Any]) -> None:
        deltas, self.deltas = self.deltas, {}
        if not deltas:
            return
        rows = {(a, s): (owner_of(a), *deltas[(a, s)]) for a, s in sorted(deltas)}
        merge_rows(
            cur, "account_balances", BALANCE_COLUMNS, BALANCE_COLUMNS[:2], _BALANCES, rows,
            self.balances,
        )  # fmt: skip

    def _entry(
        self,
        entry: dict[str, Any],
        event: RawEvent,
        lines: list[str],
        deltas: dict[tuple[str, str], list[int]],
    ) -> None:
        """The entry's lines and balance changes; refused as decoding a JournalEntry would
        refuse it (ledger.journal), without making one."""
        position, legs, accounts = event.position, entry["legs"], self.accounts
        head = f"{position}\t{entry['id']}\t"
        tail = f"\t{text(entry['kind'])}\t{entry.get('reverses') or NULL}\t"
        tail += event.data["timestamp"]["_data_"] + "\n"
        sums: dict[str, int] = {}
        for i, (account, asset, amount) in enumerate(legs):
            if type(amount) is not int or asset not in ASSETS:
                raise bad_leg(account, asset, amount)
            cell = accounts.get(account)
            if cell is None:
                if not account or " " in account:
                    raise bad_leg(account, asset, amount)
                cell = accounts[account] = text(account)
            lines.append(f"{head}{i}\t{cell}\t{asset}\t{amount}{tail}")
            sums[asset] = sums.get(asset, 0) + amount
            slot = deltas.get((account, asset))
            if slot is None:
                slot = deltas[(account, asset)] = [0, 0]
            slot[0] += amount
            slot[1] = position
        if len(legs) < 2 or any(sums.values()):
            raise UnbalancedEntry(f"entry {entry['kind']} does not balance: {sums}")

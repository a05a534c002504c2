from __future__ import annotations

from uuid import uuid4

import pytest

from ledger.journal import JournalEntry, UnbalancedEntry, transfer


def test_an_unbalanced_entry_cannot_be_constructed() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry.of(uuid4(), "x", [("a", "CNY", -100), ("b", "CNY", 99)])


def test_each_asset_must_balance_on_its_own() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry.of(uuid4(), "x", [("a", "CNY", -100), ("b", "PTS", 100)])


def test_float_amounts_are_refused() -> None:
    with pytest.raises(UnbalancedEntry):
        JournalEntry.of(uuid4(), "x", [("a", "CNY", -1.5), ("b", "CNY", 1.5)])  # type: ignore[list-item]


def test_reversal_names_what_it_reverses_and_undoes_it() -> None:
    entry = transfer(uuid4(), "top_up", "provider:wechat", "member:m:card", 500, "CNY")
    reversal = entry.reversal(uuid4())
    assert reversal.reverses == entry.id
    assert (
        entry.amount_for("member:m:card", "CNY") + reversal.amount_for("member:m:card", "CNY") == 0
    )


def test_round_trip_through_its_stored_form() -> None:
    entry = JournalEntry.of(
        uuid4(),
        "card_payment",
        [("member:m:card", "CNY", -7), ("platform:revenue", "CNY", 7)],
        reference="k",
    )
    assert JournalEntry.from_dict(entry.to_dict()) == entry

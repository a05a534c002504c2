"""Append-only is enforced by PostgreSQL; one changed byte breaks the hash chain."""

from __future__ import annotations

from uuid import uuid4

import psycopg
import pytest

from audit.chain import _FRAME, GENESIS, frame, link, seal, verify


def test_the_application_role_cannot_change_the_event_store(core) -> None:
    core.wallets.top_up(key=f"{uuid4()}", member_id=uuid4(), amount=100)
    for statement in (
        "UPDATE public.ledger_events SET topic = topic",
        "DELETE FROM public.ledger_events",
        "TRUNCATE public.ledger_events",
        "UPDATE public.ledger_receipts SET fingerprint = 'x'",
        "DELETE FROM audit.chain",
    ):
        with (
            psycopg.connect(core.app_url) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(statement)


def test_even_the_owner_is_refused_by_the_triggers(core) -> None:
    core.wallets.top_up(key=f"{uuid4()}", member_id=uuid4(), amount=100)
    for statement in (
        "UPDATE public.ledger_events SET topic = topic",
        "DELETE FROM public.ledger_events",
        "TRUNCATE public.ledger_events",
    ):
        with (
            psycopg.connect(core.owner_url) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege) as e,
        ):
            conn.execute(statement)
        assert "append-only" in str(e.value)


def test_the_journal_refuses_an_unbalanced_entry(core) -> None:
    entry = uuid4()
    with (
        psycopg.connect(core.app_url) as conn,
        pytest.raises(psycopg.errors.CheckViolation),
        conn.transaction(),
    ):
        conn.execute(
            "INSERT INTO read.journal_lines VALUES "
            "(1, %s, 0, 'a', 'CNY', -5, 'x', NULL, now()), "
            "(1, %s, 1, 'b', 'CNY', 4, 'x', NULL, now())",
            (entry, entry),
        )


def test_one_changed_byte_is_found_at_its_position(fresh_core) -> None:
    core = fresh_core
    members = [uuid4() for _ in range(5)]
    for i, m in enumerate(members):
        core.wallets.top_up(key=f"t{i}", member_id=m, amount=1_000 + i)
    with psycopg.connect(core.app_url, autocommit=True) as conn:
        while seal(conn):
            pass
    core.wallets.top_up(key="late", member_id=members[0], amount=5)  # unsealed tail is fine
    verdict = verify(core.owner_url)
    assert verdict.ok and verdict.checked == 10 and verdict.unsealed == 1

    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        target = conn.execute(
            "SELECT notification_id FROM ledger_events "
            "WHERE position('1003'::bytea IN state) > 0 ORDER BY notification_id LIMIT 1"
        ).fetchone()[0]
        conn.execute("ALTER TABLE ledger_events DISABLE TRIGGER USER")
        try:
            # flip one byte of the stored state: the amount 1003 becomes 1013 in the JSON
            state = bytearray(
                conn.execute(
                    "SELECT state FROM ledger_events WHERE notification_id = %s", (target,)
                ).fetchone()[0]
            )
            at = state.index(b"1003") + 2
            state[at] += 1  # the amount 1003 becomes 1013
            conn.execute(
                "UPDATE ledger_events SET state = %s WHERE notification_id = %s",
                (bytes(state), target),
            )
        finally:
            conn.execute("ALTER TABLE ledger_events ENABLE TRIGGER USER")
    verdict = verify(core.owner_url)
    assert not verdict.ok
    assert verdict.first_bad_position == target
    assert verdict.reason == "hash mismatch"


def test_the_sealed_hashes_are_the_documented_links(fresh_core) -> None:
    """The database builds each event's canonical bytes for the sealer and the verifier; an
    auditor recomputes them with `frame` and `link` alone from the raw columns."""
    core = fresh_core
    for i in range(3):
        core.wallets.top_up(key=f"d{i}", member_id=uuid4(), amount=100 + i)
    with psycopg.connect(core.app_url, autocommit=True) as conn:
        while seal(conn):
            pass
    with psycopg.connect(core.owner_url) as conn:
        rows = conn.execute(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
            f"{_FRAME}, c.hash FROM ledger_events e JOIN audit.chain c USING (notification_id) "
            "ORDER BY notification_id"
        ).fetchall()
    previous = GENESIS
    for position, oid, version, topic, state, canonical, sealed in rows:
        assert bytes(canonical) == frame(position, oid, version, topic, bytes(state))
        previous = link(previous, position, oid, version, topic, bytes(state))
        assert previous == bytes(sealed)
    assert len(rows) == 6


def test_a_deleted_event_is_named(fresh_core) -> None:
    core = fresh_core
    for i in range(4):
        core.wallets.top_up(key=f"x{i}", member_id=uuid4(), amount=200 + i)
    with psycopg.connect(core.app_url, autocommit=True) as conn:
        while seal(conn):
            pass
    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE ledger_events DISABLE TRIGGER USER")
        try:
            conn.execute("DELETE FROM ledger_events WHERE notification_id = 5")
        finally:
            conn.execute("ALTER TABLE ledger_events ENABLE TRIGGER USER")
    verdict = verify(core.owner_url)
    assert (verdict.ok, verdict.first_bad_position, verdict.reason) == (False, 5, "event missing")
    assert verdict.checked == 4


def test_a_removed_link_is_found(fresh_core) -> None:
    """An event with no link before sealed ones: a link was removed, or an event slipped in."""
    core = fresh_core
    for i in range(3):
        core.wallets.top_up(key=f"r{i}", member_id=uuid4(), amount=300 + i)
    with psycopg.connect(core.app_url, autocommit=True) as conn:
        while seal(conn):
            pass
    with psycopg.connect(core.owner_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit.chain DISABLE TRIGGER USER")
        try:
            conn.execute("DELETE FROM audit.chain WHERE notification_id = 3")
        finally:
            conn.execute("ALTER TABLE audit.chain ENABLE TRIGGER USER")
    verdict = verify(core.owner_url)
    assert (verdict.ok, verdict.first_bad_position, verdict.checked, verdict.unsealed) == (
        False,
        4,
        2,
        1,
    )
    assert verdict.reason == "event inserted before sealed ones"

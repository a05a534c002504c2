"""What the server does with no application in front: COPY, and one commit per row.

The scratch table has the events table's four data columns and its primary key, so the
rows cost the server what events cost it.
"""

from __future__ import annotations

import os
import time
from uuid import uuid4

import psycopg

TABLE = "bench_raw_events"
TOPIC = "ledger.domain.wallet:Wallet.CardSpent"


def _create(conn: psycopg.Connection) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(
        f"CREATE TABLE {TABLE} (originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
        " topic text, state bytea, PRIMARY KEY (originator_id, originator_version))"
    )
    conn.commit()


def copy_rate(url: str, *, rows: int, state_bytes: int, originators: int = 1000) -> float:
    """Rows/s of one COPY (text format, rows encoded beforehand) and its commit."""
    state = "\\\\x" + os.urandom(state_bytes).hex()
    ids = [str(uuid4()) for _ in range(originators)]
    lines = [
        f"{ids[i % originators]}\t{i // originators + 1}\t{TOPIC}\t{state}\n" for i in range(rows)
    ]
    chunks = ["".join(lines[i : i + 5000]).encode() for i in range(0, rows, 5000)]
    with psycopg.connect(url) as conn:
        _create(conn)
        began = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {TABLE} FROM STDIN") as copy:
            for chunk in chunks:
                copy.write(chunk)
        conn.commit()
        elapsed = time.perf_counter() - began
        conn.execute(f"DROP TABLE {TABLE}")
        conn.commit()
    return rows / elapsed


def commit_per_row_rate(url: str, *, seconds: float, state_bytes: int) -> float:
    """Rows/s of INSERT one row + COMMIT, back to back on one connection."""
    state = os.urandom(state_bytes)
    insert = f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s)"
    with psycopg.connect(url) as conn:
        _create(conn)
        done = 0
        began = time.perf_counter()
        deadline = began + seconds
        while time.perf_counter() < deadline:
            conn.execute(insert, (uuid4(), 1, TOPIC, state), prepare=True)
            conn.commit()
            done += 1
        elapsed = time.perf_counter() - began
        conn.execute(f"DROP TABLE {TABLE}")
        conn.commit()
    return done / elapsed

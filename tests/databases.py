"""Scratch databases on the test server, for the fixtures and the tests that need their own."""

from __future__ import annotations

import os
import uuid

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def create_database(server: str, prefix: str = "ledger_test", template: str | None = None) -> str:
    """A new database; a copy of `template` (a migrated one) when given. Its commits do not
    wait for the WAL flush: test data need not survive a server crash, and on a disk with
    slow fsync that wait was most of the suite's time."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        copy = f' TEMPLATE "{conninfo_to_dict(template)["dbname"]}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
    return make_conninfo(server, dbname=name)


def drop_database(server: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

"""Connection strings: the owner's URL (migrations) and the application role's URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from infra.settings import Settings

# How long a request waits for a pooled connection before it fails (503
# database_unavailable). The pools' default of 30 s made every request hang while the
# database was down or restarting.
POOL_TIMEOUT_S = 5
# The event store's wait, once it is built (building it still waits up to the library's 30 s
# for a first connection). Not less: with 100 commands on one wallet, 1 s made waits for a
# connection fail while an aggregate lock was held, and answers took up to 195 s
# (tests/proof/test_contention.py); 5 s keeps them under 3 s there, and a command still
# fails with 503 rather than waiting minutes while the database is down.
STORE_POOL_TIMEOUT_S = 5.0


def bound_store_waits(app: Any) -> None:
    app.recorder.datastore.pool.timeout = STORE_POOL_TIMEOUT_S


def app_conninfo(owner_url: str, settings: Settings) -> str:
    """The same server and database, connected as the least-privileged application role."""
    params = conninfo_to_dict(owner_url)
    params["user"] = settings.app_db_user
    password = settings.app_db_password.get_secret_value()
    if password:
        params["password"] = password
    else:
        params.pop("password", None)
    return make_conninfo(**params)


def eventsourcing_env(conninfo: str, *, pool_size: int = 8) -> dict[str, str]:
    """The eventsourcing library reads its PostgreSQL settings from POSTGRES_* variables."""
    p = conninfo_to_dict(conninfo)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(p.get("dbname", "postgres")),
        "POSTGRES_HOST": str(p.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(p.get("port", "5432")),
        "POSTGRES_USER": str(p.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(p.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "4",
        "POSTGRES_LOCK_TIMEOUT": "5",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "10",
        "CREATE_TABLE": "n",
    }


def sqlalchemy_url(conninfo: str) -> str:
    """Alembic speaks SQLAlchemy URLs; a unix-socket host goes in the query string."""
    p = conninfo_to_dict(conninfo)
    user = quote(str(p.get("user", "postgres")))
    password = p.get("password")
    auth = f"{user}:{quote(str(password))}@" if password else f"{user}@"
    host = str(p.get("host", "127.0.0.1"))
    port = str(p.get("port", "5432"))
    dbname = str(p.get("dbname", "postgres"))
    if host.startswith("/"):
        return f"postgresql+psycopg://{auth}/{dbname}?host={quote(host)}&port={port}"
    return f"postgresql+psycopg://{auth}{host}:{port}/{dbname}"


def connect(conninfo: str, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(conninfo, **kwargs)  # type: ignore[arg-type]


def log_head(conn: psycopg.Connection[Any]) -> int:
    """The position of the newest event in the log (0 for an empty log)."""
    row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM public.ledger_events")
    return int(row.fetchone()[0])  # type: ignore[index]

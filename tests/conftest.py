"""Real PostgreSQL for every test: TEST_DATABASE_URL's server when set (CI), else an embedded
one. Each test session gets its own fresh database with the migrations applied."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from infra.bootstrap import Core, build_core
from infra.settings import Settings


def _server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from infra.embedded import start_postgres

    server = start_postgres(Path(tempfile.mkdtemp(prefix="ledger-test-")) / "pg", delete=True)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    yield from _server_url()


def create_database(server: str, prefix: str = "ledger_test") -> str:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server)
    params["dbname"] = name
    return make_conninfo(**params)


def drop_database(server: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def owner_url(server_url: str) -> Iterator[str]:
    url = create_database(server_url)
    yield url
    drop_database(server_url, url)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # provider keys and any other files land in a throwaway data dir, not the checkout's
    return Settings(environment="test", data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def core(settings: Settings, owner_url: str) -> Iterator[Core]:
    built = build_core(settings, owner_url)
    yield built
    built.close()


@pytest.fixture
def fresh_core(settings: Settings, server_url: str) -> Iterator[Core]:
    """A core on its own empty database, for tests that reason about the whole log."""
    url = create_database(server_url, "ledger_fresh")
    built = build_core(settings, url)
    yield built
    built.close()
    drop_database(server_url, url)

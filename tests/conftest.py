"""Real PostgreSQL for every test: TEST_DATABASE_URL's server when set (CI), else an embedded
one. Each test session gets its own fresh database with the migrations applied."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from databases import create_database, drop_database
from infra.bootstrap import Core, build_core
from infra.migrate import upgrade
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


@pytest.fixture(scope="session")
def migrated_template(server_url: str) -> Iterator[str]:
    """An empty database at the latest migration, copied by each fresh database (copying is
    cheaper than migrating each one); nothing connects to it after the migration."""
    url = create_database(server_url, "ledger_template")
    upgrade(url)
    yield url
    drop_database(server_url, url)


@pytest.fixture
def fresh_core(settings: Settings, server_url: str, migrated_template: str) -> Iterator[Core]:
    """A core on its own empty database, for tests that reason about the whole log."""
    url = create_database(server_url, "ledger_fresh", template=migrated_template)
    built = build_core(settings, url)
    yield built
    built.close()
    drop_database(server_url, url)

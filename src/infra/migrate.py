"""Apply the Alembic migrations; run before any eventsourcing Application is built."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from infra.db import sqlalchemy_url

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def upgrade(owner_conninfo: str, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(owner_conninfo).replace("%", "%%"))
    command.upgrade(config, revision)

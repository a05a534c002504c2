"""The composition root of the write side: settings -> database -> application -> services.

The API, the workers, the CLI and the tests all build the same graph here, with other
settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import ConnectionPool

from infra.db import app_conninfo, eventsourcing_env
from infra.group_commit import DirectCommitter, GroupCommitter
from infra.migrate import upgrade
from infra.settings import Settings
from ledger.application import LedgerApplication
from ledger.commands import CommandRunner
from ledger.services.stations import StationAccountService
from ledger.services.wallets import WalletService


@dataclass
class Core:
    settings: Settings
    owner_url: str
    app_url: str
    app: LedgerApplication
    committer: DirectCommitter
    runner: CommandRunner
    wallets: WalletService
    stations: StationAccountService
    read_pool: ConnectionPool
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.committer.close()
        self.read_pool.close()
        self.app.close()


def build_core(
    settings: Settings,
    owner_url: str,
    *,
    migrate: bool = True,
    group_commit: bool = True,
    pool_size: int = 8,
) -> Core:
    if migrate:
        upgrade(owner_url)  # before the Application: it registers the composite type then
    app_url = app_conninfo(owner_url, settings)
    env = eventsourcing_env(app_url, pool_size=pool_size)
    env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
    app = LedgerApplication(env=env)
    committer: DirectCommitter
    if group_commit:
        committer = GroupCommitter(
            app,
            max_wait_s=settings.group_commit_max_wait_ms / 1000,
            max_batch=settings.group_commit_max_batch,
        )
    else:
        committer = DirectCommitter(app)
    runner = CommandRunner(app, committer)
    read_pool = ConnectionPool(app_url, min_size=1, max_size=pool_size, open=True)
    return Core(
        settings=settings,
        owner_url=owner_url,
        app_url=app_url,
        app=app,
        committer=committer,
        runner=runner,
        wallets=WalletService(runner),
        stations=StationAccountService(runner),
        read_pool=read_pool,
    )

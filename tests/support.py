"""Helpers the tests share: catch the projections up, read balances back."""

from __future__ import annotations

from infra.bootstrap import Core
from projections.framework import ProjectionRunner
from projections.registry import all_projectors
from projections.together import run_together_until_caught_up


def project(core: Core) -> None:
    """Catch every projector up the way the daemon does (one page read for all of them)."""
    run_together_until_caught_up(
        [ProjectionRunner(core.app, core.read_pool, p) for p in all_projectors()]
    )


def read_balances(core: Core, owner: str | None = None) -> dict[tuple[str, str], int]:
    sql = "SELECT account, asset, balance FROM read.account_balances"
    params: tuple[str, ...] = ()
    if owner:
        sql += " WHERE owner = %s"
        params = (owner,)
    with core.read_pool.connection() as conn:
        return {(a, s): n for a, s, n in conn.execute(sql, params).fetchall()}


def journal_sums(core: Core) -> dict[str, int]:
    with core.read_pool.connection() as conn:
        rows = conn.execute(
            "SELECT asset, sum(amount) FROM read.journal_lines GROUP BY asset"
        ).fetchall()
    return {asset: int(total) for asset, total in rows}


def nonzero(balances: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {k: v for k, v in balances.items() if v != 0}

"""`ledger` CLI (Typer): what finance and operators run by hand or from cron."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli.back_office import admin_app, backup_app
from cli.reconcile import reconcile_app
from infra.settings import get_settings

app = typer.Typer(help="Fuel-station ledger operations.", no_args_is_help=True)
audit = typer.Typer(help="Tamper evidence and audits.", no_args_is_help=True)
project = typer.Typer(help="Projections (read models).", no_args_is_help=True)
app.add_typer(audit, name="audit")
app.add_typer(project, name="project")
app.add_typer(admin_app, name="admin")
app.add_typer(backup_app, name="backup")
app.add_typer(reconcile_app, name="reconcile")
console = Console()


@contextlib.contextmanager
def owner_url() -> Iterator[str]:
    """DATABASE_URL, or the embedded server under the data dir (started if it is not)."""
    settings = get_settings()
    if settings.database_url:
        yield settings.database_url
        return
    from infra.embedded import start_postgres

    server = start_postgres(settings.data_dir / "pg")
    try:
        yield server.url
    finally:
        server.stop()


@app.command()
def migrate() -> None:
    """Apply the database migrations."""
    from infra.migrate import upgrade

    with owner_url() as url:
        upgrade(url)
    console.print("[green]migrations applied")


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain from the raw event rows; name the first bad position."""
    import time

    from audit.chain import count_events, verify

    with owner_url() as url:
        total = count_events(url)
        began = time.perf_counter()
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("verify", total=total)
            verdict = verify(url, progress=lambda n: bar.advance(task, n))
        took = time.perf_counter() - began
    if verdict.ok:
        console.print(
            f"[green]chain verified[/]: {verdict.checked} events sealed and intact, "
            f"{verdict.unsealed} not sealed yet ({took:.1f} s, "
            f"{verdict.checked / max(took, 1e-9):,.0f} events/s)"
        )
        return
    console.print(
        f"[red]chain broken[/] at position {verdict.first_bad_position}: {verdict.reason} "
        f"({verdict.checked} events verified before it)"
    )
    raise typer.Exit(1)


@audit.command("replay")
def audit_replay() -> None:
    """Rebuild every balance from the raw log alone and compare it with the read models;
    list the differences and exit 1 if there are any."""
    from rich.table import Table

    from audit.diff import replay_audit

    with (
        owner_url() as url,
        Progress(
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar,
    ):
        task = bar.add_task("replay", total=None)
        report = replay_audit(
            url,
            on_start=lambda total: bar.update(task, total=total),
            progress=lambda n: bar.advance(task, n),
        )
    if report.agree:
        console.print(
            f"[green]{report.accounts} accounts agree[/] with the log up to position "
            f"{report.replayed_to} ({report.events} entries, {report.seconds:.1f} s)"
        )
        return
    table = Table("account", "asset", "read model", "log", "read model value")
    for d in report.differences:
        table.add_row(d.account, d.asset, d.read_model, str(d.log), str(d.read))
    for position, entry_id in report.unbalanced:
        table.add_row(f"entry {entry_id} at {position}", "", "does not balance", "", "")
    console.print(table)
    console.print(
        f"[red]{len(report.differences)} differences[/], {len(report.unbalanced)} unbalanced "
        f"entries, {report.accounts} accounts compared"
    )
    raise typer.Exit(1)


@audit.command("seal")
def audit_seal() -> None:
    """Extend the hash chain over every event not sealed yet."""
    import psycopg

    from audit.chain import seal

    total = 0
    with owner_url() as url, psycopg.connect(url, autocommit=True) as conn:
        while n := seal(conn, limit=100_000):
            total += n
    console.print(f"sealed {total} events")


@project.command("run")
def project_run(name: str, once: bool = typer.Option(False, help="catch up, then exit")) -> None:
    """Run one projector: catch up with the log, then follow it (unless --once)."""
    from infra.bootstrap import build_core
    from projections.framework import ProjectionRunner
    from projections.registry import by_name

    settings = get_settings()
    with owner_url() as url:
        core = build_core(settings, url, group_commit=False)
        try:
            runner = ProjectionRunner(core.app, core.read_pool, by_name(name))
            applied = runner.run_until_caught_up()
            console.print(f"{name}: applied {applied} events, at position {runner.position()}")
            if not once:
                from projections.daemon import Daemon

                daemon = Daemon(core)
                daemon.runners = [runner]
                daemon.run()
        finally:
            core.close()


@app.command("rebuild")
def rebuild_command(
    names: list[str] = typer.Argument(None, help="projectors to rebuild (default: all)"),
    lanes: int = typer.Option(None, help="bulk processes (default: one per core, at most 4)"),
    fresh: bool = typer.Option(False, help="discard a half-done shadow instead of resuming it"),
) -> None:
    """Rebuild read models into a shadow schema, then swap them in (the API keeps serving the
    old tables until then). Resumes where a killed rebuild stopped."""
    from infra.bootstrap import build_core
    from projections.rebuild import NotRebuildable, RebuildBusy, rebuild

    settings = get_settings()
    with owner_url() as url:
        core = build_core(settings, url, group_commit=False)
        try:
            result = rebuild(core, url, names or (), lanes=lanes, fresh=fresh, progress=True)
        except (NotRebuildable, RebuildBusy, KeyError) as e:
            console.print(f"[red]{e}")
            raise typer.Exit(1) from None
        finally:
            core.close()
    rate = result.head / result.seconds if result.seconds else 0.0
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items())
    console.print(
        f"[green]rebuilt[/] {', '.join(result.projectors)} up to position {result.head}: "
        f"{result.seconds:.1f} s, {rate:,.0f} events/s ({phases})"
    )
    for lane in result.lanes:  # where each bulk lane's time went: wall/CPU seconds
        spent = ", ".join(f"{k} {w:.1f}/{c:.1f}" for k, (w, c) in lane["seconds"].items())
        console.print(f"[dim]lane {lane['lane']} ({lane['events']:,} events): {spent}")


if __name__ == "__main__":
    app()

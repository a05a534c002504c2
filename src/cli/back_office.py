"""`ledger admin create` and `ledger backup run|restore`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from infra.settings import get_settings

admin_app = typer.Typer(help="Back-office administrators.", no_args_is_help=True)
backup_app = typer.Typer(help="Database backups and restores.", no_args_is_help=True)
console = Console()


@admin_app.command("create")
def admin_create(
    name: str = typer.Option(..., help="the sign-in name"),
    password: str = typer.Option(
        ...,
        prompt=True,
        confirmation_prompt=True,
        hide_input=True,
        help="at least 12 characters with letters and digits (prompted when left out)",
    ),
    display_name: str = typer.Option("", help="shown in the back office"),
) -> None:
    """Create a super-admin (every permission). There is no default admin or password."""
    import psycopg

    from cli.main import owner_url
    from infra.migrate import upgrade
    from infra.passwords import WeakPassword, check_strength, hash_password

    try:
        check_strength(password, name=name)
    except WeakPassword as exc:
        console.print(f"[red]refused[/]: {exc}")
        raise typer.Exit(2) from None
    with owner_url() as url:
        upgrade(url)
        with psycopg.connect(url) as conn:
            try:
                row = conn.execute(
                    "INSERT INTO office.admins (admin_id, name, display_name, password_hash, "
                    "is_super) VALUES (gen_random_uuid(), %s, %s, %s, true) RETURNING admin_id",
                    (name, display_name, hash_password(password)),
                ).fetchone()
            except psycopg.errors.UniqueViolation:
                console.print(f"[red]refused[/]: an admin named {name!r} exists")
                raise typer.Exit(1) from None
            except psycopg.errors.CheckViolation:
                console.print("[red]refused[/]: a name is 3-64 letters, digits or _.@-")
                raise typer.Exit(2) from None
            assert row is not None
            conn.execute(
                "INSERT INTO office.admin_log (admin_id, admin_name, action, resource, target, "
                "outcome, detail) VALUES (%s, %s, 'admins.create_super', 'admins', %s, 'ok', "
                '\'{"via": "cli"}\')',
                (row[0], name, str(row[0])),
            )
    console.print(f"[green]super-admin {name} created[/] ({row[0]})")


@backup_app.command("run")
def backup_run() -> None:
    """Take a backup now into BACKUP_DIR (pg_dump of the server's version, custom format)."""
    from cli.main import owner_url
    from infra.backup import run_backup

    settings = get_settings()
    directory = settings.backup_dir or settings.data_dir / "backups"
    with owner_url() as url:
        done = run_backup(url, directory, keep_days=settings.backup_keep_days)
    console.print(f"[green]backup[/] {done.path} ({done.size_bytes:,} bytes, sha256 {done.sha256})")


@backup_app.command("restore")
def backup_restore(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a .dump file"),
    database: str = typer.Option(
        "", help="the new database's name (default: ledger_restored_<timestamp>)"
    ),
    sha256: str = typer.Option("", help="expected sha256 (default: the .sha256 beside it)"),
) -> None:
    """Restore into a fresh database on DATABASE_URL's server, verify the hash chain there
    (`ledger audit verify`) and print its trial balance."""
    from audit.chain import verify
    from cli.main import owner_url
    from infra.backup import BackupError, restore, trial_balance

    name = database or "ledger_restored_" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    with owner_url() as url:
        try:
            target = restore(file, url, name, sha256=sha256 or None)
        except BackupError as exc:
            console.print(f"[red]restore refused[/]: {exc}")
            raise typer.Exit(1) from None
        verdict = verify(target)
        balances = trial_balance(target)
    console.print(f"restored {file.name} into database [bold]{name}[/]")
    if not verdict.ok:
        console.print(
            f"[red]chain broken[/] at position {verdict.first_bad_position}: {verdict.reason}"
        )
        raise typer.Exit(1)
    console.print(
        f"[green]chain verified[/]: {verdict.checked} events sealed and intact, "
        f"{verdict.unsealed} not sealed yet"
    )
    for asset in sorted({a for _, a in balances}):
        total = sum(n for (_, a), n in balances.items() if a == asset)
        accounts = sum(1 for _, a in balances if a == asset)
        console.print(f"trial balance {asset}: {accounts} accounts, legs sum to {total}")
    if any(sum(n for (_, a), n in balances.items() if a == asset) for _, asset in balances):
        raise typer.Exit(1)

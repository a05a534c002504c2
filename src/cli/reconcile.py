"""`ledger reconcile import FILE --provider --date` and `ledger reconcile fetch --provider
--date`: import a provider's trade bill for a business day, by hand or from cron."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from infra.settings import get_settings

reconcile_app = typer.Typer(help="Provider statement reconciliation.", no_args_is_help=True)
console = Console()


class Provider(StrEnum):
    wechat = "wechat"
    alipay = "alipay"


ProviderOption = typer.Option(..., help="whose statement: wechat or alipay")
DateOption = typer.Option(..., "--date", help="the statement's business day, YYYY-MM-DD")


def provider_clients() -> Any:
    """The WeChat Pay and Alipay clients, at the base URLs in the settings."""
    from api.providers_wiring import build_provider_clients

    return build_provider_clients(get_settings())


@contextlib.contextmanager
def ledger_core() -> Iterator[Any]:
    from cli.main import owner_url
    from infra.bootstrap import build_core

    with owner_url() as url:
        core = build_core(get_settings(), url, group_commit=False)
        try:
            yield core
        finally:
            core.close()


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        console.print(f"[red]refused[/]: {text!r} is not a date like 2026-11-24")
        raise typer.Exit(2) from None


def _import(provider: str, day: date, content: bytes, source: str) -> None:
    from ledger.errors import DomainError

    with ledger_core() as core:
        try:
            result = core.reconciliation.import_statement(
                provider=provider, bill_date=day, content=content, source=source,
                imported_by="cli",
            )  # fmt: skip
        except DomainError as exc:
            console.print(f"[red]refused[/] ({exc.code}): {exc}")
            raise typer.Exit(1) from None
    _report(result)


def _report(result: dict[str, Any]) -> None:
    t = result["totals"]
    kinds = ", ".join(f"{k} {n}" for k, n in t["exceptions_by_kind"].items() if n) or "none"
    console.print(
        f"{result['provider']} {result['bill_date']}: {t['lines']} lines, "
        f"{t['matched']} matched, exceptions: {kinds}"
    )
    console.print(
        f"settled {t['settled_gross_fen']} fen gross, fee {t['matched_fee_fen']} fen, "
        f"{t['settled_net_fen']} fen to the bank (reconciliation {result['reconciliation_id']})"
    )


@reconcile_app.command("import")
def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="the trade bill"),
    provider: Provider = ProviderOption,
    day: str = DateOption,
) -> None:
    """Import a downloaded trade bill (WeChat's CSV, Alipay's zip)."""
    _import(provider.value, _day(day), file.read_bytes(), "cli")


@reconcile_app.command("fetch")
def fetch_command(provider: Provider = ProviderOption, day: str = DateOption) -> None:
    """Download the day's trade bill from the provider, then import it."""
    from providers.errors import ProviderError
    from providers.trade_bills import download_statement

    bill_date = _day(day)
    clients = provider_clients()
    try:
        content = download_statement(
            provider.value, bill_date, wechat_pay=clients.wechat_pay, alipay=clients.alipay
        )
    except ProviderError as exc:
        console.print(f"[red]the provider did not hand over the statement[/]: {exc}")
        raise typer.Exit(1) from None
    finally:
        clients.close()
    _import(provider.value, bill_date, content, "fetch")

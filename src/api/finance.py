"""Finance under /v1/finance: the trial balance, account statements, the journal, the balance
sheet and single entries, as of now, a log position or an instant (read models only); and
the audits: the hash chain verified and every balance replayed from the raw log.

Finance reads and runs audits; the back office (admin) may read too. Thin: parse, authorise,
call one query or one audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request

from api.auth import Principal, require_role
from api.errors import ApiError
from api.instants import AwareInstant
from audit import chain, diff, runs
from projections import as_of, finance_queries

router = APIRouter(prefix="/v1/finance", tags=["finance"])

FinanceReader = Annotated[Principal, Depends(require_role("finance", "admin"))]
FinanceAuditor = Annotated[Principal, Depends(require_role("finance"))]
AsOfInstant = Annotated[
    AwareInstant | None,
    Query(alias="as_of", description="an instant with its offset (ISO 8601)"),
]
Position = Annotated[int | None, Query(ge=0, description="a log position")]
Limit = Annotated[int, Query(ge=1, le=500)]
ACCOUNT = r"^[a-z_]+(:[A-Za-z0-9_\-]+)*$"
# `*` stands for one segment: member:*:card (a class), provider:*
ACCOUNT_PATTERN = r"^[a-z_]+(:([A-Za-z0-9_\-]+|\*))*$"


def _pool(request: Request) -> Any:
    return request.app.state.core.read_pool


def _as_of(instant: datetime | None, position: int | None) -> as_of.AsOf:
    if instant is not None and position is not None:
        raise ApiError(422, "invalid_request", "give `as_of` or `position`, not both")
    return as_of.AsOf(position=position, instant=instant)


# -- balances ---------------------------------------------------------------------------------


@router.get("/trial-balance")
def trial_balance(
    reader: FinanceReader,
    request: Request,
    instant: AsOfInstant = None,
    position: Position = None,
    level: Literal["class", "account"] = "class",
    prefix: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 500,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Every account's balance (or each class's: member:*:card ...) now, as of a position or
    an instant, with each asset's totals, from the journal lines."""
    return as_of.trial_balance(
        _pool(request), _as_of(instant, position), level=level, prefix=prefix, limit=limit,
        cursor=cursor,
    )  # fmt: skip


@router.get("/accounts/{account}")
def account(
    account: Annotated[str, Path(max_length=200, pattern=ACCOUNT)],
    reader: FinanceReader,
    request: Request,
    instant: AsOfInstant = None,
    position: Position = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One account's balance per asset and its lines, newest first, as of a point."""
    return as_of.account_statement(
        _pool(request), account, _as_of(instant, position), limit=limit, cursor=cursor
    )


@router.get("/balance-sheet")
def balance_sheet(
    reader: FinanceReader, request: Request, instant: AsOfInstant = None, position: Position = None
) -> dict[str, Any]:
    """Assets held (providers, bank, receivables) against what is owed (members, stations,
    payees) and equity (revenue less marketing), in CNY, as of any point; points
    outstanding against points issued beside it. `balanced` when they agree."""
    return finance_queries.balance_sheet(_pool(request), _as_of(instant, position))


# -- the journal ------------------------------------------------------------------------------


@router.get("/journal")
def journal(
    reader: FinanceReader,
    request: Request,
    account: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=ACCOUNT_PATTERN,
            description="an account, a class (member:*:card) or a pattern (provider:*)",
        ),
    ] = None,
    start: Annotated[
        AwareInstant | None, Query(alias="from", description="first instant, included (offset)")
    ] = None,
    end: Annotated[
        AwareInstant | None, Query(alias="to", description="last instant, excluded (offset)")
    ] = None,
    asset: Literal["CNY", "PTS"] | None = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Journal lines in log order (oldest first) of an account, a class or every account,
    over a period; `next_cursor` continues the list."""
    period = finance_queries.Period(start, end)
    if start is not None and end is not None and start > end:
        raise ApiError(422, "invalid_request", "`from` must not be after `to`")
    return finance_queries.journal(
        _pool(request), account=account, period=period, asset=asset, limit=limit, cursor=cursor
    )


@router.get("/entries/{entry_id}")
def entry(entry_id: UUID, reader: FinanceReader, request: Request) -> dict[str, Any]:
    """One journal entry: every leg, the entries that reverse it, and the stored event that
    carried it (as recorded, with its position)."""
    found = finance_queries.entry(_pool(request), entry_id)
    if found is None:
        raise ApiError(404, "not_found", "No such journal entry")
    return found


# -- audits -----------------------------------------------------------------------------------


@router.get("/audits/verify")
def verify_chain(reader: FinanceReader, request: Request) -> dict[str, Any]:
    """Recompute the hash chain over the raw event rows (a million events take seconds):
    `ok`, how many events are sealed and intact, how many are not sealed yet, and the first
    position that fails with the reason."""
    url = request.app.state.core.app_url
    with runs.exclusive(url, "verify"):
        return chain.verify(url).as_dict()


@router.post("/audits/replay")
def replay(auditor: FinanceAuditor, request: Request) -> dict[str, Any]:
    """Rebuild every balance from the raw log alone and compare it with the read models
    (account balances, journal lines, points lots), each at the position it has reached.
    Runs in the request: a million events take seconds. `agree` when nothing differs."""
    url = request.app.state.core.app_url
    with runs.exclusive(url, "replay"):
        return diff.replay_audit(url).as_dict()

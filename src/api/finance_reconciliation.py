"""Provider statement reconciliation: finance imports a WeChat Pay or Alipay trade bill (an
upload, or fetched from the provider) and reads the runs; finance and the back office close
the exceptions with a note. Thin: parse, authorise, call the service or one query."""

from __future__ import annotations

from datetime import date
from email.parser import BytesParser
from email.policy import HTTP
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.admin_log import ChangeLog
from api.auth import Principal, require_role
from api.errors import ApiError
from api.permissions import require_permission
from projections import reconciliation_queries as queries
from providers.errors import ProviderError
from providers.trade_bills import download_statement

router = APIRouter(tags=["finance: reconciliation"])

Provider = Literal["wechat", "alipay"]
ExceptionState = Literal["open", "resolved"]
ExceptionKind = Literal[
    "missing_in_ledger", "missing_at_provider", "amount_differs", "refund_differs",
    "already_settled",
]  # fmt: skip
Limit = Annotated[int, Query(ge=1, le=200)]
FinanceReader = Annotated[Principal, Depends(require_role("finance", "admin"))]
FinanceClerk = Annotated[Principal, Depends(require_role("finance"))]
ExceptionsView = Annotated[Principal, Depends(require_permission("reconciliation", "view"))]
ExceptionsChange = Annotated[Principal, Depends(require_permission("reconciliation", "change"))]
MAX_STATEMENT_BYTES = 32 * 1024 * 1024
# What the providers answer for a day whose statement is not out (yet, or any more).
NOT_AVAILABLE = {"NO_STATEMENT_EXIST", "isp.bill_not_exist"}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


class FetchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Provider
    bill_date: date


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=1000, description="what was found and done")


def _core(request: Request) -> Any:
    return request.app.state.core


def _pool(request: Request) -> Any:
    return request.app.state.core.read_pool


def _file_of(content_type: str, body: bytes) -> bytes:
    """The statement itself: the raw body, or the `file` part of a multipart form."""
    if len(body) > MAX_STATEMENT_BYTES:
        raise ApiError(
            413, "statement_too_large", f"a statement is at most {MAX_STATEMENT_BYTES} B"
        )
    if not content_type.startswith("multipart/form-data"):
        return body
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    form = BytesParser(policy=HTTP).parsebytes(head + body)
    for part in form.iter_parts() if form.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == "file":
            return bytes(part.get_payload(decode=True) or b"")
    raise ApiError(422, "invalid_request", "send the statement as the form field `file`")


# -- finance -------------------------------------------------------------------------------------


@router.post(
    "/v1/finance/reconciliations", status_code=201, tags=["finance"], openapi_extra=UPLOAD_BODY
)
async def import_statement(
    clerk: FinanceClerk,
    request: Request,
    provider: Annotated[Provider, Query()],
    bill_date: Annotated[date, Query(description="the statement's business day (CST)")],
) -> dict[str, Any]:
    """Import a trade bill (WeChat's CSV, Alipay's zip) as the body or the form field `file`.
    Importing the same statement again answers the same; another one for that day is
    refused (`statement_already_imported`)."""
    content = _file_of(request.headers.get("content-type", ""), await request.body())
    return await run_in_threadpool(
        _core(request).reconciliation.import_statement,
        provider=provider,
        bill_date=bill_date,
        content=content,
        source="upload",
        imported_by=f"finance:{clerk.subject}",
    )


@router.post("/v1/finance/reconciliations/fetch", status_code=201, tags=["finance"])
def fetch_statement(clerk: FinanceClerk, request: Request, body: FetchRequest) -> dict[str, Any]:
    """Download the day's trade bill from the provider, then import it."""
    providers = request.app.state.providers
    try:
        content = download_statement(
            body.provider,
            body.bill_date,
            wechat_pay=providers.wechat_pay,
            alipay=providers.alipay,
        )
    except ProviderError as e:
        if e.code in NOT_AVAILABLE:
            raise ApiError(
                404, "statement_not_available", "The provider has no statement for that day"
            ) from e
        status = 503 if e.retryable else 502
        raise ApiError(
            status, "provider_unavailable", "The provider did not hand over the statement",
            provider_code=e.code,
        ) from e  # fmt: skip
    return _core(request).reconciliation.import_statement(  # type: ignore[no-any-return]
        provider=body.provider,
        bill_date=body.bill_date,
        content=content,
        source="fetch",
        imported_by=f"finance:{clerk.subject}",
    )


@router.get("/v1/finance/reconciliations", tags=["finance"])
def list_runs(
    reader: FinanceReader,
    request: Request,
    provider: Provider | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Reconciliation runs, latest bill date first; `next_cursor` continues."""
    return queries.runs(_pool(request), provider=provider, limit=limit, cursor=cursor)


@router.get("/v1/finance/reconciliations/{reconciliation_id}", tags=["finance"])
def get_run(
    reconciliation_id: UUID,
    reader: FinanceReader,
    request: Request,
    state: ExceptionState | None = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One run with its outcome and a page of its exceptions."""
    found = queries.run(_pool(request), reconciliation_id)
    if found is None:
        raise ApiError(404, "not_found", "No such reconciliation")
    page = queries.exceptions(
        _pool(request), reconciliation_id=reconciliation_id, state=state, limit=limit,
        cursor=cursor,
    )  # fmt: skip
    return {**found, "exceptions": page["items"], "next_cursor": page["next_cursor"]}


def _resolve(request: Request, exception_id: UUID, note: str, by: str) -> dict[str, Any]:
    found = queries.exception(_pool(request), exception_id)
    if found is None:
        raise ApiError(404, "not_found", "No such reconciliation exception")
    return _core(request).reconciliation.resolve(  # type: ignore[no-any-return]
        reconciliation_id=found["reconciliation_id"],
        exception_id=exception_id,
        note=note,
        resolved_by=by,
    )


@router.post("/v1/finance/reconciliations/exceptions/{exception_id}/resolve", tags=["finance"])
def finance_resolve(
    exception_id: UUID, clerk: FinanceClerk, request: Request, body: Resolution
) -> dict[str, Any]:
    """Close an exception with a note (no money moves)."""
    return _resolve(request, exception_id, body.note, f"finance:{clerk.subject}")


# -- back office ---------------------------------------------------------------------------------


@router.get("/v1/admin/reconciliation/exceptions", tags=["admin"])
def admin_exceptions(
    admin: ExceptionsView,
    request: Request,
    state: ExceptionState | None = None,
    provider: Provider | None = None,
    kind: ExceptionKind | None = None,
    reconciliation_id: UUID | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Every reconciliation exception, newest first, filtered."""
    return queries.exceptions(
        _pool(request), state=state, provider=provider, kind=kind,
        reconciliation_id=reconciliation_id, limit=limit, cursor=cursor,
    )  # fmt: skip


@router.post("/v1/admin/reconciliation/exceptions/{exception_id}/resolve", tags=["admin"])
def admin_resolve(
    exception_id: UUID,
    admin: ExceptionsChange,
    request: Request,
    log: ChangeLog,
    body: Annotated[Resolution, Body()],
) -> dict[str, Any]:
    """Close an exception with a note (no money moves); the admin log records it."""
    after = _resolve(request, exception_id, body.note, log.actor)
    log.change("reconciliation", "resolve", target=str(exception_id), after=after)
    return after

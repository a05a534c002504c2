"""The daily reconciliation: once yesterday's statements are out, fetch and import each
provider's. The scheduler sends this sweep every period; it does nothing for a provider
whose bill is imported, and asks a provider that had no bill again only after a pause.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.domain.reconciliation import PROVIDERS
from ledger.errors import DomainError
from projections.station_figures import BUSINESS_TZ
from providers.errors import ProviderError
from providers.trade_bills import download_statement
from workers.context import WorkerContext

log = logging.getLogger("workers.reconciliation")

# WeChat: "ready about 10:00 the next day"; Alipay's are out earlier.
READY_HOUR = 10
RETRY_AFTER_S = 15 * 60

_last_tries: dict[tuple[str, date], float] = {}
_lock = threading.Lock()


def _may_try(provider: str, day: date, now: float) -> bool:
    """At most one attempt per provider and day every RETRY_AFTER_S, in this process."""
    with _lock:
        last = _last_tries.get((provider, day))
        if last is not None and now - last < RETRY_AFTER_S:
            return False
        _last_tries[(provider, day)] = now
        return True


def reconcile_due(
    ctx: WorkerContext, now: datetime | None = None, clock: Any = time.monotonic
) -> dict[str, str]:
    """What happened per provider: imported, already imported, not due, waiting, failed."""
    local = (now or datetime.now(UTC)).astimezone(BUSINESS_TZ)
    if local.hour < READY_HOUR:
        return dict.fromkeys(PROVIDERS, "not due")
    day = local.date() - timedelta(days=1)
    return {provider: _reconcile(ctx, provider, day, clock()) for provider in PROVIDERS}


def _reconcile(ctx: WorkerContext, provider: str, day: date, now: float) -> str:
    service = ctx.core.reconciliation
    if service.imported(provider, day):
        return "already imported"
    if not _may_try(provider, day, now):
        return "waiting"
    try:
        content = download_statement(provider, day, wechat_pay=ctx.wechat_pay, alipay=ctx.alipay)
        result = service.import_statement(
            provider=provider, bill_date=day, content=content, source="schedule",
            imported_by="scheduler",
        )  # fmt: skip
    except (ProviderError, DomainError) as exc:
        log.warning("%s statement of %s not imported: %s", provider, day, exc)
        return f"failed: {getattr(exc, 'code', type(exc).__name__)}"
    totals = result["totals"]
    log.info(
        "%s statement of %s: %s lines, %s matched, %s exceptions",
        provider, day, totals["lines"], totals["matched"], totals["exceptions"],
    )  # fmt: skip
    return "imported"

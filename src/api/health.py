"""/healthz (the process is up), /readyz (database reachable, projections caught up),
/metrics (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from api.errors import problem

router = APIRouter(tags=["platform"])
LAG_READY_EVENTS = 10_000


def projection_lag(core: Any) -> dict[str, dict[str, float]]:
    with core.read_pool.connection() as conn:
        head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM public.ledger_events")
        head_id = head.fetchone()[0]
        rows = conn.execute(
            "SELECT projection, position, extract(epoch FROM now() - updated_at) FROM read.tracking"
        ).fetchall()
        sealed = conn.execute("SELECT coalesce(max(notification_id), 0) FROM audit.chain")
        sealed_id = sealed.fetchone()[0]
    lag = {
        name: {"events": head_id - pos, "seconds": float(age) if head_id > pos else 0.0}
        for name, pos, age in rows
    }
    lag["audit_chain"] = {"events": head_id - sealed_id, "seconds": 0.0}
    lag["_head"] = {"events": head_id, "seconds": 0.0}
    return lag


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Any:
    core = request.app.state.core
    lag = projection_lag(core)
    behind = {k: v["events"] for k, v in lag.items() if not k.startswith("_")}
    if any(v > LAG_READY_EVENTS for v in behind.values()):
        return problem(503, "projections_behind", "Read models are catching up", lag=behind)
    return {"status": "ready", "lag_events": behind}


class _LedgerCollector:
    def __init__(self, core: Any) -> None:
        self.core = core

    def collect(self) -> Any:
        lag = projection_lag(self.core)
        events = GaugeMetricFamily(
            "ledger_projection_lag_events", "Events behind the log", labels=["projection"]
        )
        seconds = GaugeMetricFamily(
            "ledger_projection_lag_seconds",
            "Seconds since the projection last caught up",
            labels=["projection"],
        )
        for name, v in lag.items():
            if not name.startswith("_"):
                events.add_metric([name], v["events"])
                seconds.add_metric([name], v["seconds"])
        yield events
        yield seconds
        head = GaugeMetricFamily("ledger_log_head", "Last notification id")
        head.add_metric([], lag["_head"]["events"])
        yield head
        committer = self.core.committer
        for attr in ("batches", "commands"):
            family = GaugeMetricFamily(f"ledger_group_commit_{attr}", f"Group commit {attr}")
            family.add_metric([], getattr(committer, attr, 0))
            yield family


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    registry = CollectorRegistry()
    registry.register(_LedgerCollector(request.app.state.core))  # type: ignore[arg-type]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

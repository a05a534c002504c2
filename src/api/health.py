"""/healthz (the process is up), /readyz (database reachable, projections caught up),
/metrics (Prometheus)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from api.errors import problem
from api.gc_tuning import frozen_objects

router = APIRouter(tags=["platform"])
LAG_READY_EVENTS = 10_000


def projection_lag(core: Any) -> dict[str, dict[str, float]]:
    """Per projector: events behind the log head, and seconds since the oldest event it has
    not applied was recorded (0 when caught up)."""
    with core.read_pool.connection() as conn:
        head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM public.ledger_events")
        head_id = head.fetchone()[0]
        rows = conn.execute("SELECT projection, position FROM read.tracking").fetchall()
        sealed = conn.execute("SELECT coalesce(max(notification_id), 0) FROM audit.chain")
        sealed_id = sealed.fetchone()[0]
    positions = [(name, pos) for name, pos in rows] + [("audit_chain", sealed_id)]
    waiting = _recorded_after(core, {pos for _, pos in positions if pos < head_id})
    now = time.time()
    lag = {
        name: {
            "events": head_id - pos,
            "seconds": max(0.0, now - waiting[pos]) if pos in waiting else 0.0,
        }
        for name, pos in positions
    }
    lag["_head"] = {"events": head_id, "seconds": 0.0}
    return lag


def _recorded_after(core: Any, positions: set[int]) -> dict[int, float]:
    """When the first event after each position was recorded (its timestamp, epoch s)."""
    found: dict[int, float] = {}
    for position in positions:
        following = core.app.recorder.select_notifications(
            start=position, limit=1, inclusive_of_start=False
        )
        if following:
            event = core.app.mapper.to_domain_event(following[0])
            found[position] = event.timestamp.timestamp()
    return found


def rebuild_positions(core: Any) -> dict[str, int]:
    """Where a running (or interrupted) rebuild has got to, per projector."""
    with core.read_pool.connection() as conn:
        readable = conn.execute(
            "SELECT CASE WHEN to_regclass('read_shadow.tracking') IS NULL THEN false "
            "ELSE has_table_privilege('read_shadow.tracking', 'SELECT') END"
        ).fetchone()
        if not readable or not readable[0]:
            return {}
        rows = conn.execute("SELECT projection, position FROM read_shadow.tracking").fetchall()
    return dict(rows)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Any:
    core = request.app.state.core
    lag = projection_lag(core)
    behind = {k: v["events"] for k, v in lag.items() if not k.startswith("_")}
    seconds = {k: round(v["seconds"], 3) for k, v in lag.items() if not k.startswith("_")}
    if any(v > LAG_READY_EVENTS for v in behind.values()):
        return problem(
            503, "projections_behind", "Read models are catching up", lag=behind,
            lag_seconds=seconds,
        )  # fmt: skip
    return {"status": "ready", "lag_events": behind, "lag_seconds": seconds}


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
            "Seconds since the oldest event the projection has not applied was recorded",
            labels=["projection"],
        )
        for name, v in lag.items():
            if not name.startswith("_"):
                events.add_metric([name], v["events"])
                seconds.add_metric([name], v["seconds"])
        yield events
        yield seconds
        rebuild = GaugeMetricFamily(
            "ledger_rebuild_position", "Log position a rebuild has reached", labels=["projection"]
        )
        for name, position in rebuild_positions(self.core).items():
            rebuild.add_metric([name], position)
        yield rebuild
        head = GaugeMetricFamily("ledger_log_head", "Last notification id")
        head.add_metric([], lag["_head"]["events"])
        yield head
        frozen = GaugeMetricFamily(
            "ledger_gc_frozen_objects",
            "Objects this process's collector no longer walks (api.gc_tuning); growing "
            "without bound would mean leaked reference cycles",
        )
        frozen.add_metric([], frozen_objects())
        yield frozen
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

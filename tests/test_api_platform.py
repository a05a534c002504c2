from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from support import project


def test_health_ready_metrics_and_docs(core) -> None:
    project(core)
    with TestClient(create_app(core=core)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code in (200, 503)
        metrics = client.get("/metrics").text
        assert "ledger_projection_lag_events" in metrics
        assert "ledger_gc_frozen_objects" in metrics
        assert client.get("/openapi.json").json()["info"]["title"] == "Fuel-station ledger"
        assert client.get("/docs").status_code == 200


def test_unknown_paths_answer_problem_json(core) -> None:
    with TestClient(create_app(core=core)) as client:
        response = client.get("/v1/nothing-here")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"

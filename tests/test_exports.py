"""Exports: CSV and Excel with the lists' filters, streamed from a server-side cursor with flat
memory, and large ones as a job with progress and a download link."""

from __future__ import annotations

import csv
import io
import time
import tracemalloc
from collections.abc import Iterator
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

import api.exports
from api.main import create_app
from infra import exports as ex
from office_support import admin_with, assert_problem, bearer, paid_card_order, super_token
from orders_support import make_station
from projections.office_queries import FuelOrderFilters
from support import project


@pytest.fixture
def client(core, tmp_path, monkeypatch) -> Iterator[TestClient]:
    monkeypatch.setattr(core.settings, "export_dir", tmp_path / "exports")
    with TestClient(create_app(core=core, providers=object())) as c:  # type: ignore[arg-type]
        yield c


def parse_csv(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_fuel_orders_as_csv_and_excel_with_filters(core, client, monkeypatch) -> None:
    station = make_station(core)
    amounts = [10_000, 20_000, 30_000]
    for amount in amounts:
        paid_card_order(core, station, amount)
    paid_card_order(core, make_station(core), 50_000)
    project(core)
    root = bearer(super_token(core))
    url = f"/v1/admin/exports/fuel-orders?station_id={station}"
    response = client.get(url, headers=root)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = parse_csv(response.content)
    assert sorted(int(r["amount_fen"]) for r in rows) == amounts
    assert {r["station_id"] for r in rows} == {str(station)}
    listed = client.get(f"/v1/admin/fuel-orders?station_id={station}", headers=root).json()
    assert [r["order_id"] for r in rows] == [o["order_id"] for o in listed["items"]]
    some = parse_csv(client.get(url + "&min_amount_fen=15000", headers=root).content)
    assert sorted(int(r["amount_fen"]) for r in some) == [20_000, 30_000]

    excel = client.get(url + "&format=xlsx", headers=root)
    assert excel.status_code == 200 and excel.headers["content-type"].startswith(
        "application/vnd.openxmlformats"
    )
    sheet = load_workbook(io.BytesIO(excel.content), read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:3] == ("order_id", "out_trade_no", "member_id")
    amount_at = values[0].index("amount_fen")
    assert sorted(v[amount_at] for v in values[1:]) == amounts

    lines = parse_csv(
        client.get(f"/v1/admin/exports/journal-lines?owner=station:{station}", headers=root).content
    )
    assert sum(int(r["amount"]) for r in lines) == sum(a - a // 100 for a in amounts)
    assert_problem(client.get(url + "&format=pdf", headers=root), 422, "invalid_request")
    monkeypatch.setattr(api.exports, "XLSX_STREAM_MAX_ROWS", 2)
    too_big = client.get(url + "&format=xlsx", headers=root)
    assert assert_problem(too_big, 413, "export_too_large")["rows"] == 3
    _, viewer = admin_with(core, "orders:view")
    assert_problem(client.get(url, headers=bearer(viewer)), 403, "forbidden")


def test_other_contexts_tables_export_with_their_own_columns(core, client) -> None:
    """Withdrawals and mall orders belong to other contexts: every column, the filters that
    the table has, a clear 422 for one it has not."""
    root = bearer(super_token(core))
    for name, table in (("withdrawals", "withdrawals"), ("mall-orders", "mall_orders")):
        with core.read_pool.connection() as conn:
            exists = conn.execute("SELECT to_regclass(%s)", (f"read.{table}",)).fetchone()[0]
        response = client.get(f"/v1/admin/exports/{name}?since=2020-01-01T00:00:00Z", headers=root)
        if exists is None:
            assert_problem(response, 404, "not_found")
            continue
        assert response.status_code == 200, response.text
        header = response.content.decode("utf-8").lstrip("\ufeff").splitlines()[0]
        with core.read_pool.connection() as conn:
            columns = [
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'read' AND table_name = %s ORDER BY ordinal_position",
                    (table,),
                ).fetchall()
            ]
        assert header.split(",") == columns
        # each table has one of state and status, never both
        both = client.get(f"/v1/admin/exports/{name}?state=y&status=z", headers=root)
        assert_problem(both, 422, "invalid_request")


def test_a_large_export_runs_as_a_job_with_progress(core, client) -> None:
    station = make_station(core)
    for amount in (11_000, 12_000):
        paid_card_order(core, station, amount)
    project(core)
    _, token = admin_with(core, "orders:export", "exports:view")
    started = client.post(
        f"/v1/admin/exports/fuel-orders/jobs?station_id={station}", headers=bearer(token)
    )
    assert started.status_code == 202, started.text
    status = client.get(started.json()["status_url"], headers=bearer(token)).json()
    assert status["status"] == "done", status
    assert (status["rows_done"], status["rows_total"], status["progress"]) == (2, 2, 1.0)
    data = client.get(status["download_url"], headers=bearer(token))
    assert sorted(int(r["amount_fen"]) for r in parse_csv(data.content)) == [11_000, 12_000]
    _, journal_only = admin_with(core, "journal:export", "exports:view")
    assert_problem(
        client.get(started.json()["status_url"], headers=bearer(journal_only)), 403, "forbidden"
    )
    assert_problem(
        client.get(f"/v1/admin/exports/{uuid4()}", headers=bearer(token)), 404, "not_found"
    )


def fill_orders(owner_url: str, station: UUID, count: int) -> None:
    with psycopg.connect(owner_url) as conn:
        conn.execute(
            "INSERT INTO read.fuel_orders (order_id, out_trade_no, member_id, station_id, grade, "
            "nozzle, amount_fen, price_fen_per_litre, volume_ml, coupon_fen, points_used, "
            "points_fen, payable_fen, status, method, card_fen, created_at, expires_at, paid_at, "
            "updated_at, position) "
            "SELECT gen_random_uuid(), md5(%s || i::text), gen_random_uuid(), %s, "
            "'92#', 1 + i %% 8, 10000 + i %% 50000, 789, 25348, 0, 0, 0, "
            "10000 + i %% 50000, 'paid', 'card', "
            "10000 + i %% 50000, now() - make_interval(secs => i), now(), "
            "now() - make_interval(secs => i), now(), i FROM generate_series(1, %s) AS i",
            (str(station), station, count),
        )


def traced(work) -> tuple[int, float]:
    """(peak bytes traced while `work` runs, seconds)."""
    tracemalloc.start()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, seconds


def test_streamed_exports_keep_memory_flat(fresh_core, tmp_path) -> None:
    tiny, small, large = uuid4(), uuid4(), uuid4()
    fill_orders(fresh_core.owner_url, tiny, 4_000)
    fill_orders(fresh_core.owner_url, small, 10_000)
    fill_orders(fresh_core.owner_url, large, 50_000)
    pool = fresh_core.read_pool
    kind = ex.KINDS["fuel-orders"]

    def csv_of(station: UUID) -> tuple[int, float, int]:
        sql, params = kind.query(FuelOrderFilters(station_id=station))
        size = [0]

        def drain() -> None:
            for block in ex.copy_csv(pool, sql, params):
                size[0] += len(block)

        peak, seconds = traced(drain)
        return peak, seconds, size[0]

    peak_s, _, _ = csv_of(small)
    peak_l, seconds, size = csv_of(large)
    assert size > 50_000 * 200
    # Five times the rows, the same memory: one COPY block at a time.
    assert peak_l < 4 * 2**20 and peak_l < peak_s * 1.5 + 2**20, (peak_s, peak_l)
    print(
        f"\ncsv (COPY): 50000 rows in {seconds:.2f} s = {50_000 / seconds:,.0f} rows/s, "
        f"{size / 2**20:.1f} MiB, peak traced {peak_l / 2**20:.2f} MiB "
        f"(10k rows: {peak_s / 2**20:.2f} MiB)"
    )

    def cursor_rows(station: UUID) -> tuple[int, float, int]:
        sql, params = kind.query(FuelOrderFilters(station_id=station))
        count = [0]

        def drain() -> None:
            for _ in ex.stream_rows(pool, sql, params):
                count[0] += 1

        peak, seconds = traced(drain)
        return peak, seconds, count[0]

    # tracemalloc slows the row decoding tenfold: fewer rows here.
    peak_s, _, _ = cursor_rows(tiny)
    peak_l, seconds, rows = cursor_rows(small)
    assert rows == 10_000
    assert peak_l < 16 * 2**20 and peak_l < peak_s * 1.5 + 2**20, (peak_s, peak_l)
    print(
        f"server-side cursor: {rows} rows in {seconds:.2f} s (traced), peak traced "
        f"{peak_l / 2**20:.1f} MiB (4k rows: {peak_s / 2**20:.1f} MiB)"
    )

    sample = next(ex.stream_rows(pool, *kind.query(FuelOrderFilters(station_id=large))))

    def workbook(rows: int) -> tuple[int, float]:
        return traced(
            lambda: ex.write_xlsx(
                tmp_path / f"{rows}.xlsx", "fuel-orders", kind.columns, iter([sample] * rows)
            )
        )

    peak_s, _ = workbook(250)
    peak_l, seconds = workbook(1_000)
    assert peak_l < peak_s * 1.5 + 2**20, (peak_s, peak_l)
    print(
        f"xlsx (openpyxl write-only): 1000 rows in {seconds:.2f} s (traced), peak traced "
        f"{peak_l / 2**20:.1f} MiB (250 rows: {peak_s / 2**20:.1f} MiB)"
    )


def test_a_job_runs_in_the_api_when_redis_is_down(core, client, monkeypatch) -> None:
    station = make_station(core)
    paid_card_order(core, station, 13_000)
    project(core)
    monkeypatch.setattr(core.settings, "redis_url", "redis://127.0.0.1:9/0")  # nothing listens
    monkeypatch.delitem(core.extras, "export_broker", raising=False)
    _, token = admin_with(core, "orders:export", "exports:view")
    started = client.post(
        f"/v1/admin/exports/fuel-orders/jobs?station_id={station}", headers=bearer(token)
    )
    assert started.status_code == 202, started.text
    status = client.get(started.json()["status_url"], headers=bearer(token)).json()
    assert (status["status"], status["rows_done"]) == ("done", 1), status

"""Stations: worked examples through HTTP (nearby, compare, detail, history), the domain's
rules, and exactly-once commands. Every test works around its own random origin in the
South Pacific, so stations other tests register in the shared database never show up."""

from __future__ import annotations

import math
import random
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from ledger.domain.station import Station
from ledger.errors import (
    IdempotencyConflict,
    InvalidPrice,
    InvalidStation,
    NotFound,
    UnknownGrade,
    UnknownNozzle,
)
from ledger.services.stations import StationWebhookService
from projections.station_queries import bounding_box
from support import project

KM_LAT_E6 = 8_993  # micro-degrees of latitude in one kilometre, about


def haversine_m(lat1_e6: int, lng1_e6: int, lat2_e6: int, lng2_e6: int) -> float:
    """The reference: textbook haversine on the mean Earth radius, in Python floats."""
    p1, p2 = math.radians(lat1_e6 / 1e6), math.radians(lat2_e6 / 1e6)
    dp, dl = p2 - p1, math.radians((lng2_e6 - lng1_e6) / 1e6)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def origin() -> tuple[int, int]:
    rng = random.Random(uuid4().int)
    return rng.randint(-45_000_000, -20_000_000), rng.randint(-170_000_000, -130_000_000)


def degrees(e6: int) -> str:
    return f"{'-' if e6 < 0 else ''}{abs(e6) // 1_000_000}.{abs(e6) % 1_000_000:06d}"


def register(core, lat_e6: int, lng_e6: int, name: str = "Station", **kw) -> UUID:
    station = core.catalog.register(
        code=f"T-{uuid4().hex[:12]}",
        name=name,
        address=f"{name} road 1",
        phone="+86 28 8888 0000",
        lat_e6=lat_e6,
        lng_e6=lng_e6,
        settlement_rate_bps=kw.pop("settlement_rate_bps", 80),
        **kw,
    )
    return UUID(station["station_id"])


def set_prices(core, station_id: UUID, grade: str, *prices: int) -> None:
    for price in prices:
        core.catalog.change_price(station_id, grade, price, "partner:1", key=uuid4().hex)


@pytest.fixture
def client(core):
    with TestClient(create_app(core=core)) as c:
        yield c


@pytest.fixture
def town(core):
    """Three stations within 10 km of an origin, one 30 km away; prices moved up and down."""
    lat, lng = origin()
    s = {
        "a": register(core, lat + KM_LAT_E6, lng, "A", rating=45),  # 1 km north
        "b": register(core, lat, lng + 3 * 10_400, "B"),  # about 3 km east
        "c": register(core, lat - 5 * KM_LAT_E6, lng - 5 * 10_400, "C"),  # about 7 km SW
        "far": register(core, lat + 30 * KM_LAT_E6, lng, "Far"),
    }
    for station_id in s.values():
        core.catalog.configure_grade(station_id, "92#", [1, 2])
    core.catalog.configure_grade(s["a"], "95#", [3])
    core.catalog.configure_grade(s["a"], "98#", [4])  # sold, not priced yet
    set_prices(core, s["a"], "92#", 780, 760)  # down
    set_prices(core, s["a"], "95#", 830)  # first price: same
    set_prices(core, s["b"], "92#", 750, 770)  # up
    set_prices(core, s["c"], "92#", 740)
    set_prices(core, s["far"], "92#", 700)  # cheapest, but out of range
    project(core)
    coords = {k: core.catalog.get(v) for k, v in s.items()}
    return lat, lng, s, coords


def test_nearby_is_nearest_first_with_distances_and_price_changes(client, town) -> None:
    lat, lng, s, coords = town
    r = client.get(
        "/v1/stations/nearby",
        params={"lat": degrees(lat), "lng": degrees(lng), "radius_km": "10"},
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["station_id"] for i in items] == [str(s["a"]), str(s["b"]), str(s["c"])]
    for item in items:
        ref = haversine_m(lat, lng, item["lat_e6"], item["lng_e6"])
        assert abs(item["distance_m"] - ref) <= 1, (item["name"], item["distance_m"], ref)
        c = coords[item["name"].lower()]
        assert (item["lat_e6"], item["lng_e6"]) == (c["lat_e6"], c["lng_e6"])
        assert item["lat"] == degrees(c["lat_e6"]) and item["lng"] == degrees(c["lng_e6"])
    a, b, c = items
    assert 990 <= a["distance_m"] <= 1010 and a["rating"] == "4.5"
    assert a["address"] == "A road 1"
    assert [(p["grade"], p["price_fen_per_litre"], p["change"]) for p in a["prices"]] == [
        ("92#", 760, "down"),
        ("95#", 830, "same"),
    ]
    assert a["prices"][0]["previous_fen_per_litre"] == 780
    assert (a["prices"][0]["price_yuan"], a["prices"][0]["previous_yuan"]) == ("7.60", "7.80")
    assert a["prices"][1]["previous_fen_per_litre"] is None
    assert [(p["price_fen_per_litre"], p["change"]) for p in b["prices"]] == [(770, "up")]
    assert [(p["price_fen_per_litre"], p["change"]) for p in c["prices"]] == [(740, "same")]

    # a smaller radius, a limit, a grade only one station sells
    params = {"lat": degrees(lat), "lng": degrees(lng)}
    near = client.get("/v1/stations/nearby", params={**params, "radius_km": "3.5"}).json()
    assert [i["name"] for i in near["items"]] == ["A", "B"]
    two = client.get("/v1/stations/nearby", params={**params, "limit": 2}).json()
    assert [i["name"] for i in two["items"]] == ["A", "B"]
    graded = client.get("/v1/stations/nearby", params={**params, "grade": "95#"}).json()
    assert [i["name"] for i in graded["items"]] == ["A"]
    wide = client.get("/v1/stations/nearby", params={**params, "radius_km": 40}).json()
    assert [i["name"] for i in wide["items"]] == ["A", "B", "C", "Far"]


def test_compare_is_cheapest_first_within_the_radius(client, town) -> None:
    lat, lng, s, _ = town
    r = client.get(
        "/v1/stations/compare",
        params={"grade": "92#", "lat": degrees(lat), "lng": degrees(lng), "radius_km": 10},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["grade"] == "92#"
    assert [(i["name"], i["price"]["price_fen_per_litre"]) for i in body["items"]] == [
        ("C", 740),
        ("A", 760),
        ("B", 770),
    ]
    assert [i["price"]["change"] for i in body["items"]] == ["same", "down", "up"]
    for item in body["items"]:
        assert item["distance_m"] > 0 and item["lat"] and item["lng"]


def test_station_detail_and_not_found(client, town) -> None:
    _, _, s, coords = town
    r = client.get(f"/v1/stations/{s['a']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == coords["a"]["code"] and body["status"] == "open"
    assert "settlement_rate_bps" not in body  # the platform's terms are not public
    grades = {g["grade"]: g for g in body["grades"]}
    assert grades["92#"]["nozzles"] == [1, 2]
    assert grades["92#"]["price"]["price_fen_per_litre"] == 760
    assert grades["98#"] == {"grade": "98#", "nozzles": [4], "price": None}

    missing = client.get(f"/v1/stations/{uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "not_found"
    assert client.get(f"/v1/stations/{uuid4()}/prices/history").json()["code"] == "not_found"


def test_price_history_is_newest_first_and_paginates(core, client) -> None:
    lat, lng = origin()
    station_id = register(core, lat, lng)
    core.catalog.configure_grade(station_id, "92#", [1])
    core.catalog.configure_grade(station_id, "95#", [2])
    set_prices(core, station_id, "92#", 700, 720, 710, 730, 730)  # the last one is a no-op
    set_prices(core, station_id, "95#", 800)
    project(core)
    url = f"/v1/stations/{station_id}/prices/history"

    everything = client.get(url).json()
    assert [
        (i["price"]["grade"], i["price"]["price_fen_per_litre"]) for i in everything["items"]
    ] == [
        ("95#", 800),
        ("92#", 730),
        ("92#", 710),
        ("92#", 720),
        ("92#", 700),
    ]
    assert everything["next_cursor"] is None
    positions = [i["position"] for i in everything["items"]]
    assert positions == sorted(positions, reverse=True)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"grade": "92#", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(url, params=params).json()
        pages += 1
        seen += [(i["price"]["price_fen_per_litre"], i["price"]["change"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert seen == [(730, "up"), (710, "down"), (720, "up"), (700, "same")]
    bad = client.get(url, params={"cursor": "not-a-position"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"


@pytest.mark.parametrize(
    "params",
    [
        {"lat": "91", "lng": "104"},
        {"lat": "-90.000001", "lng": "104"},
        {"lat": "30", "lng": "180.5"},
        {"lat": "30", "lng": "104", "radius_km": "0"},
        {"lat": "30", "lng": "104", "radius_km": "100.001"},
        {"lat": "30", "lng": "104", "limit": "0"},
        {"lat": "30", "lng": "104", "limit": "101"},
        {"lat": "thirty", "lng": "104"},
        {"lat": "NaN", "lng": "104"},
        {"lng": "104"},
    ],
)
def test_nearby_refuses_bad_input_with_problem_json(client, params) -> None:
    r = client.get("/v1/stations/nearby", params=params)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "invalid_request"


def test_edits_record_only_changes_and_reach_the_read_model(core, client) -> None:
    lat, lng = origin()
    station_id = register(core, lat, lng, "Old name")
    core.catalog.configure_grade(station_id, "92#", [1])
    set_prices(core, station_id, "92#", 800)
    edited = core.catalog.edit(station_id, name="New name", phone="+86 28 8888 0000")
    assert edited["changed"] == ["name"] and edited["name"] == "New name"
    stored = core.app.repository.get(station_id)
    assert stored.version == 4
    core.catalog.edit(station_id, name="Old name")  # A -> B -> A is allowed
    core.catalog.edit(station_id, name="Old name")  # and the same again records nothing
    assert core.app.repository.get(station_id).version == 5

    moved = lat + 2 * KM_LAT_E6
    core.catalog.edit(station_id, lat_e6=moved, rating=38)
    project(core)
    params = {"lat": degrees(lat), "lng": degrees(lng), "radius_km": 5}
    [item] = client.get("/v1/stations/nearby", params=params).json()["items"]
    assert (item["name"], item["lat_e6"], item["rating"]) == ("Old name", moved, "3.8")
    assert abs(item["distance_m"] - haversine_m(lat, lng, moved, lng)) <= 1

    core.catalog.edit(station_id, status="closed")
    project(core)
    assert client.get("/v1/stations/nearby", params=params).json()["items"] == []
    assert client.get(f"/v1/stations/{station_id}").json()["status"] == "closed"
    with core.read_pool.connection() as conn:
        row = conn.execute(
            "SELECT name, lat_e6, rating, settlement_rate_bps, status FROM read.stations "
            "WHERE station_id = %s",
            (station_id,),
        ).fetchone()
    domain = core.catalog.get(station_id)
    assert row == tuple(
        domain[k] for k in ("name", "lat_e6", "rating", "settlement_rate_bps", "status")
    )


def test_the_domain_refuses_what_the_platform_does_not_accept(core) -> None:
    lat, lng = origin()
    with pytest.raises(InvalidStation):
        register(core, 90_000_001, lng)
    with pytest.raises(InvalidStation):
        register(core, lat, -180_000_001)
    with pytest.raises(InvalidStation):
        register(core, lat, lng, settlement_rate_bps=3_001)
    with pytest.raises(InvalidStation):
        register(core, lat, lng, rating=51)
    with pytest.raises(InvalidStation):
        register(core, lat, lng, name=" ")
    with pytest.raises(InvalidStation):
        register(core, 30.5, lng)  # type: ignore[arg-type] - no floats in the domain

    station_id = register(core, lat, lng, settlement_rate_bps=3_000)
    catalog = core.catalog
    with pytest.raises(UnknownGrade):
        catalog.change_price(station_id, "92#", 700, "partner:1", key=uuid4().hex)
    with pytest.raises(UnknownGrade):
        catalog.configure_grade(station_id, "93#", [1])
    catalog.configure_grade(station_id, "92#", [1, 2])
    with pytest.raises(InvalidStation):
        catalog.configure_grade(station_id, "95#", [2, 3])  # nozzle 2 dispenses 92#
    with pytest.raises(InvalidStation):
        catalog.configure_grade(station_id, "95#", [])
    for bad in (0, 100_001, -5, 7.5, True):
        with pytest.raises(InvalidPrice):
            catalog.change_price(station_id, "92#", bad, "partner:1", key=uuid4().hex)
    with pytest.raises(InvalidStation):
        catalog.edit(station_id, settlement_rate_bps=-1)
    with pytest.raises(InvalidStation):
        catalog.edit(station_id, owner="someone")
    with pytest.raises(NotFound):
        catalog.edit(uuid4(), name="x")
    catalog.change_price(station_id, "92#", 1, "partner:1", key=uuid4().hex)
    catalog.change_price(station_id, "92#", 100_000, "partner:1", key=uuid4().hex)

    station = core.app.repository.get(station_id)
    assert isinstance(station, Station)
    assert station.price_of("92#") == 100_000
    assert station.settlement_rate_bps == 3_000 and station.is_open
    station.check_nozzle("92#", 2)
    with pytest.raises(UnknownNozzle) as e:
        station.check_nozzle("92#", 3)
    assert e.value.code == "unknown_nozzle"
    with pytest.raises(UnknownGrade) as g:
        station.price_of("95#")
    assert g.value.code == "unknown_grade"
    catalog.configure_grade(station_id, "95#", [3])
    with pytest.raises(UnknownGrade):  # sold, but no price yet
        core.app.repository.get(station_id).price_of("95#")


def test_commands_apply_once(core) -> None:
    lat, lng = origin()
    code = f"T-{uuid4().hex[:12]}"
    profile = dict(
        code=code,
        name="Once",
        address="1 Road",
        phone="1",
        lat_e6=lat,
        lng_e6=lng,
        settlement_rate_bps=50,
    )
    first = core.catalog.register(**profile)
    assert core.catalog.register(**profile) == first
    with pytest.raises(IdempotencyConflict):
        core.catalog.register(**{**profile, "name": "Twice"})
    station_id = UUID(first["station_id"])
    assert station_id == Station.create_id(code)
    core.catalog.configure_grade(station_id, "92#", [1])

    changed = core.catalog.change_price(station_id, "92#", 760, "partner:7", key="p-1")
    assert changed == {
        "station_id": str(station_id),
        "grade": "92#",
        "price_fen_per_litre": 760,
        "previous_fen_per_litre": None,
        "changed": True,
    }
    assert core.catalog.change_price(station_id, "92#", 760, "partner:7", key="p-1") == changed
    with pytest.raises(IdempotencyConflict):
        core.catalog.change_price(station_id, "92#", 770, "partner:7", key="p-1")
    same = core.catalog.change_price(station_id, "92#", 760, "partner:7", key="p-2")
    assert same["changed"] is False
    up = core.catalog.change_price(station_id, "92#", 775, "partner:7", key="p-3")
    assert (up["previous_fen_per_litre"], up["changed"]) == (760, True)
    project(core)
    with core.read_pool.connection() as conn:
        history = conn.execute(
            "SELECT price_fen_per_litre, previous_fen_per_litre, changed_by "
            "FROM read.price_history WHERE station_id = %s ORDER BY position",
            (station_id,),
        ).fetchall()
    assert history == [(760, None, "partner:7"), (775, 760, "partner:7")]
    # Registered, GradeConfigured and two PriceChanged: nothing else was recorded
    assert core.app.repository.get(station_id).version == 4


def test_the_box_holds_the_circle_at_the_antimeridian_and_the_poles(core, client) -> None:
    box = bounding_box(0, 179_990_000, 5_000)
    assert box.lng_ranges == (
        (box.lng_ranges[0][0], 180_000_000),
        (-180_000_000, box.lng_ranges[1][1]),
    )
    assert bounding_box(89_990_000, 0, 5_000).lng_ranges == ()
    lat = random.Random(uuid4().int).randint(-60_000_000, -50_000_000)
    west = register(core, lat, 179_990_000, "West")
    east = register(core, lat, -179_990_000, "East")
    project(core)
    params = {"lat": degrees(lat), "lng": "179.999000", "radius_km": 5}
    items = client.get("/v1/stations/nearby", params=params).json()["items"]
    assert [i["station_id"] for i in items] == [str(west), str(east)]
    for item in items:
        ref = haversine_m(lat, 179_999_000, item["lat_e6"], item["lng_e6"])
        assert abs(item["distance_m"] - ref) <= 1


def test_the_read_models_equal_a_replay_in_one_page_or_one_event_per_page(fresh_core) -> None:
    from projections.framework import ProjectionRunner
    from projections.stations import StationsProjector

    core = fresh_core
    lat, lng = origin()
    ids = [register(core, lat + i * KM_LAT_E6, lng, f"S{i}") for i in range(3)]
    for i, station_id in enumerate(ids):
        core.catalog.configure_grade(station_id, "92#", [1, 2])
        set_prices(core, station_id, "92#", 700 + i, 690, 720)
        core.catalog.edit(station_id, name=f"Renamed {i}", rating=10 * i)
        core.catalog.configure_grade(station_id, "92#", [1])
        core.catalog.configure_grade(station_id, "95#", [2, 3])
        set_prices(core, station_id, "95#", 800)
    core.catalog.edit(ids[0], status="closed", lat_e6=lat - KM_LAT_E6)
    hooks = StationWebhookService(core.runner)
    for n in (1, 2):
        hooks.configure(ids[1], url=f"https://pos.example/{n}", secret_sealed=f"s{n}", by="t")
    hooks.configure(ids[2], url="https://pos.example/3", secret_sealed="s3", by="t")
    hooks.remove(ids[2], by="t")

    def replay(page_size: int) -> list[list[tuple]]:
        projector = StationsProjector()
        with core.read_pool.connection() as conn:
            for table in projector.tables():
                conn.execute(f"TRUNCATE {table}")
            conn.execute("DELETE FROM read.tracking WHERE projection = %s", (projector.name,))
        ProjectionRunner(
            core.app, core.read_pool, projector, page_size=page_size
        ).run_until_caught_up()
        with core.read_pool.connection() as conn:
            return [
                conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in projector.tables()
            ]

    one_by_one, all_at_once = replay(1), replay(10_000)
    assert one_by_one == all_at_once
    stations, prices, history, webhooks = all_at_once
    assert len(stations) == 3 and len(history) == 3 * 4
    assert [(r[0], r[1], r[2]) for r in webhooks] == [(ids[1], "https://pos.example/2", "s2")]
    for station_id in ids:
        domain = core.catalog.get(station_id)
        [row] = [r for r in stations if r[0] == station_id]
        assert row[1:10] == tuple(
            domain[k]
            for k in (
                "code",
                "name",
                "address",
                "phone",
                "lat_e6",
                "lng_e6",
                "rating",
                "settlement_rate_bps",
                "status",
            )
        )
        read = {r[1]: (r[2], r[6]) for r in prices if r[0] == station_id}
        assert read == {
            g: (v["price_fen_per_litre"], v["nozzles"]) for g, v in domain["grades"].items()
        }

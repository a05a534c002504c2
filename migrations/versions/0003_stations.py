"""Stations read models: profiles with coordinates, current prices per grade, price history.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"

STATIONS = """
CREATE TABLE IF NOT EXISTS read.stations (
    station_id uuid PRIMARY KEY,
    code text NOT NULL UNIQUE,
    name text NOT NULL,
    address text NOT NULL,
    phone text NOT NULL,
    lat_e6 integer NOT NULL CHECK (lat_e6 BETWEEN -90000000 AND 90000000),
    lng_e6 integer NOT NULL CHECK (lng_e6 BETWEEN -180000000 AND 180000000),
    rating smallint NOT NULL,
    settlement_rate_bps integer NOT NULL,
    status text NOT NULL,
    registered_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
-- The bounding-box prefilter of /v1/stations/nearby. Measured by bench/nearby.py against an
-- index on lat_e6 alone: with both columns the longitude test is done on index entries, so
-- only stations inside the box are fetched from the heap, not the whole latitude band.
CREATE INDEX IF NOT EXISTS stations_lat_lng ON read.stations (lat_e6, lng_e6);

-- Great-circle distance in metres (haversine on the IUGG mean radius) between two points in
-- micro-degrees. A plain SQL function, so the planner inlines it into the queries.
CREATE OR REPLACE FUNCTION read.distance_m(
    lat1_e6 integer, lng1_e6 integer, lat2_e6 integer, lng2_e6 integer
) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 2 * 6371008.8 * asin(least(1.0, sqrt(
        power(sin(radians((lat2_e6 - lat1_e6) / 2e6::float8)), 2)
        + cos(radians(lat1_e6 / 1e6::float8)) * cos(radians(lat2_e6 / 1e6::float8))
            * power(sin(radians((lng2_e6 - lng1_e6) / 2e6::float8)), 2)
    )))
$$;

-- One row per station and grade: nozzles from GradeConfigured, price from PriceChanged.
CREATE TABLE IF NOT EXISTS read.station_prices (
    station_id uuid NOT NULL,
    grade text NOT NULL,
    price_fen_per_litre integer,
    previous_fen_per_litre integer,
    change text NOT NULL DEFAULT 'same' CHECK (change IN ('up', 'down', 'same')),
    changed_at timestamptz,
    nozzles integer[] NOT NULL DEFAULT '{}',
    position bigint NOT NULL,
    PRIMARY KEY (station_id, grade)
);

-- Every PriceChanged, keyed by its position in the log.
CREATE TABLE IF NOT EXISTS read.price_history (
    position bigint PRIMARY KEY,
    station_id uuid NOT NULL,
    grade text NOT NULL,
    price_fen_per_litre integer NOT NULL,
    previous_fen_per_litre integer,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS price_history_station
    ON read.price_history (station_id, position);
CREATE INDEX IF NOT EXISTS price_history_station_grade
    ON read.price_history (station_id, grade, position);
"""


def upgrade() -> None:
    op.execute(STATIONS)


def downgrade() -> None:
    raise NotImplementedError("rebuild read models instead")

-- Hourly and daily traffic rollups recomputed from the minute facts by refreshable
-- materialized views, replacing the maxMap-state rollups of 0002.
--
-- Why: the maxMap states were exact but slow to read. `make bench` over 1M detections
-- (50 cameras, a week) took ~2 s for the hourly profile of all cameras and ~1.2 s for the
-- daily ranking, slower than scanning the raw detections (~0.3 s): every read merges a map
-- of up to 60 (hourly) or 1440 (daily) minute entries per camera, class and period.
--
-- How: traffic_density_1m records when each row reached the warehouse (loaded_at, with a
-- minmax index so recent rows are found without a scan). Every 5 seconds a refreshable
-- view recomputes each (camera, class, hour) that received a row in the last 15 minutes
-- from traffic_density_1m FINAL, i.e. from each minute's largest emission, and appends it
-- to traffic_density_1h_rows, where the latest recompute wins (ReplacingMergeTree on
-- refreshed_at). The daily rollup is recomputed the same way from the hourly rows. A
-- recompute from FINAL is exact whatever the inserts looked like (re-emissions,
-- duplicates, out-of-order or late rows) and idempotent; reads are plain sums over one row
-- per period. The price: rollups trail the minute facts by one refresh (seconds). A refresh
-- that fails for more than 15 minutes while rows keep arriving would leave hours stale; a
-- second view recomputes every hour touched in the last day, once an hour, as a repair.

ALTER TABLE {database}.traffic_density_1m
    ADD COLUMN IF NOT EXISTS loaded_at DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC') COMMENT 'When the row reached the warehouse (drives the rollup refresh).';

-- Rows loaded before this migration read as loaded at the epoch: the backfill below rolls
-- them up once, and the refresh never sees them as new.
ALTER TABLE {database}.traffic_density_1m MATERIALIZE COLUMN loaded_at SETTINGS mutations_sync = 2;

ALTER TABLE {database}.traffic_density_1m
    MODIFY COLUMN loaded_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the row reached the warehouse (drives the rollup refresh).';

ALTER TABLE {database}.traffic_density_1m
    ADD INDEX IF NOT EXISTS loaded_at_minmax loaded_at TYPE minmax GRANULARITY 1;

ALTER TABLE {database}.traffic_density_1m MATERIALIZE INDEX loaded_at_minmax SETTINGS mutations_sync = 2;

DROP VIEW IF EXISTS {database}.traffic_density_1h_mv;

DROP VIEW IF EXISTS {database}.traffic_density_1d_mv;

DROP TABLE IF EXISTS {database}.traffic_density_1h_state;

DROP TABLE IF EXISTS {database}.traffic_density_1d_state;

CREATE TABLE IF NOT EXISTS {database}.traffic_density_1h_rows
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with a density fact for the camera and class.',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    detections UInt64 COMMENT 'Boxes of the class summed over those frames.',
    max_in_view UInt16 COMMENT 'Most vehicles of the class seen in one frame.',
    pcu Float64 COMMENT 'Passenger car units summed like detections.',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'When this recompute ran; the latest wins.'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (camera_id, vehicle_class, hour)
COMMENT 'Rollup rows behind traffic_density_1h, appended by traffic_density_1h_refresh; read the view, not this.';

CREATE TABLE IF NOT EXISTS {database}.traffic_density_1d_rows
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    day Date COMMENT 'UTC day.',
    minutes_covered UInt64 COMMENT 'Minutes of the day with a density fact for the camera and class.',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    detections UInt64 COMMENT 'Boxes of the class summed over those frames.',
    max_in_view UInt16 COMMENT 'Most vehicles of the class seen in one frame.',
    pcu Float64 COMMENT 'Passenger car units summed like detections.',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'When this recompute ran; the latest wins.'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYear(day)
ORDER BY (camera_id, vehicle_class, day)
COMMENT 'Rollup rows behind traffic_density_1d, appended by traffic_density_1d_refresh; read the view, not this.';

-- Backfill: everything loaded so far, once.
INSERT INTO {database}.traffic_density_1h_rows
SELECT
    camera_id,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    count() AS minutes_covered,
    sum(frames) AS frames,
    sum(detections) AS detections,
    max(max_in_view) AS max_in_view,
    sum(pcu) AS pcu,
    now64(3) AS refreshed_at
FROM {database}.traffic_density_1m FINAL
GROUP BY camera_id, vehicle_class, hour;

INSERT INTO {database}.traffic_density_1d_rows
SELECT
    camera_id,
    vehicle_class,
    toDate(hour) AS day,
    sum(minutes_covered) AS minutes_covered,
    sum(frames) AS frames,
    sum(detections) AS detections,
    max(max_in_view) AS max_in_view,
    sum(pcu) AS pcu,
    now64(3) AS refreshed_at
FROM {database}.traffic_density_1h_rows FINAL
GROUP BY camera_id, vehicle_class, day;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.traffic_density_1h_refresh
REFRESH EVERY 5 SECOND APPEND TO {database}.traffic_density_1h_rows
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with a density fact for the camera and class.',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    detections UInt64 COMMENT 'Boxes of the class summed over those frames.',
    max_in_view UInt16 COMMENT 'Most vehicles of the class seen in one frame.',
    pcu Float64 COMMENT 'Passenger car units summed like detections.',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'When this recompute ran; the latest wins.'
)
AS SELECT
    camera_id,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    count() AS minutes_covered,
    sum(frames) AS frames,
    sum(detections) AS detections,
    max(max_in_view) AS max_in_view,
    sum(pcu) AS pcu,
    now64(3) AS refreshed_at
FROM {database}.traffic_density_1m FINAL
WHERE (camera_id, vehicle_class, toStartOfHour(window_start)) IN (
    SELECT camera_id, vehicle_class, toStartOfHour(window_start)
    FROM {database}.traffic_density_1m
    WHERE loaded_at >= now64(3) - INTERVAL 15 MINUTE
)
GROUP BY camera_id, vehicle_class, hour
COMMENT 'Every 5 s: recomputes the hours that received minute facts in the last 15 minutes.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.traffic_density_1h_repair
REFRESH EVERY 1 HOUR APPEND TO {database}.traffic_density_1h_rows
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with a density fact for the camera and class.',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    detections UInt64 COMMENT 'Boxes of the class summed over those frames.',
    max_in_view UInt16 COMMENT 'Most vehicles of the class seen in one frame.',
    pcu Float64 COMMENT 'Passenger car units summed like detections.',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'When this recompute ran; the latest wins.'
)
AS SELECT
    camera_id,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    count() AS minutes_covered,
    sum(frames) AS frames,
    sum(detections) AS detections,
    max(max_in_view) AS max_in_view,
    sum(pcu) AS pcu,
    now64(3) AS refreshed_at
FROM {database}.traffic_density_1m FINAL
WHERE (camera_id, vehicle_class, toStartOfHour(window_start)) IN (
    SELECT camera_id, vehicle_class, toStartOfHour(window_start)
    FROM {database}.traffic_density_1m
    WHERE loaded_at >= now64(3) - INTERVAL 1 DAY
)
GROUP BY camera_id, vehicle_class, hour
COMMENT 'Every hour: recomputes the hours that received minute facts in the last day (repair).';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.traffic_density_1d_refresh
REFRESH EVERY 5 SECOND APPEND TO {database}.traffic_density_1d_rows
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    day Date COMMENT 'UTC day.',
    minutes_covered UInt64 COMMENT 'Minutes of the day with a density fact for the camera and class.',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    detections UInt64 COMMENT 'Boxes of the class summed over those frames.',
    max_in_view UInt16 COMMENT 'Most vehicles of the class seen in one frame.',
    pcu Float64 COMMENT 'Passenger car units summed like detections.',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'When this recompute ran; the latest wins.'
)
AS SELECT
    camera_id,
    vehicle_class,
    toDate(hour) AS day,
    sum(minutes_covered) AS minutes_covered,
    sum(frames) AS frames,
    sum(detections) AS detections,
    max(max_in_view) AS max_in_view,
    sum(pcu) AS pcu,
    now64(3) AS refreshed_at
FROM {database}.traffic_density_1h_rows FINAL
WHERE (camera_id, vehicle_class, toDate(hour)) IN (
    SELECT camera_id, vehicle_class, toDate(hour)
    FROM {database}.traffic_density_1h_rows
    WHERE refreshed_at >= now64(3) - INTERVAL 15 MINUTE
)
GROUP BY camera_id, vehicle_class, day
COMMENT 'Every 5 s: recomputes the days whose hours were recomputed in the last 15 minutes.';

CREATE OR REPLACE VIEW {database}.traffic_density_1h
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with a density fact for the camera and class.',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    detections UInt64 COMMENT 'Vehicles seen: boxes of the class summed over those frames (a vehicle in view for N frames counts N times).',
    mean_in_view Float64 COMMENT 'Mean vehicles of the class in view per sampled frame (detections / frames).',
    max_in_view UInt16 COMMENT 'Most vehicles of the class seen in one frame.',
    pcu Float64 COMMENT 'Passenger car units summed like detections (detections x PCU factor).',
    mean_pcu_in_view Float64 COMMENT 'Mean passenger car units in view per sampled frame (pcu / frames).'
)
AS SELECT
    camera_id,
    vehicle_class,
    hour,
    minutes_covered,
    frames,
    detections,
    if(frames = 0, 0, detections / frames) AS mean_in_view,
    max_in_view,
    pcu,
    if(frames = 0, 0, pcu / frames) AS mean_pcu_in_view
FROM {database}.traffic_density_1h_rows FINAL
COMMENT 'Traffic density per camera, vehicle class and hour: sums over minutes of each minute''s final emission. Trails traffic_density_1m by a few seconds; no FINAL needed.';

CREATE OR REPLACE VIEW {database}.traffic_density_1d
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    day Date COMMENT 'UTC day.',
    minutes_covered UInt64 COMMENT 'Minutes of the day with a density fact for the camera and class.',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    detections UInt64 COMMENT 'Vehicles seen: boxes of the class summed over those frames (a vehicle in view for N frames counts N times).',
    mean_in_view Float64 COMMENT 'Mean vehicles of the class in view per sampled frame (detections / frames).',
    max_in_view UInt16 COMMENT 'Most vehicles of the class seen in one frame.',
    pcu Float64 COMMENT 'Passenger car units summed like detections (detections x PCU factor).',
    mean_pcu_in_view Float64 COMMENT 'Mean passenger car units in view per sampled frame (pcu / frames).'
)
AS SELECT
    camera_id,
    vehicle_class,
    day,
    minutes_covered,
    frames,
    detections,
    if(frames = 0, 0, detections / frames) AS mean_in_view,
    max_in_view,
    pcu,
    if(frames = 0, 0, pcu / frames) AS mean_pcu_in_view
FROM {database}.traffic_density_1d_rows FINAL
COMMENT 'Traffic density per camera, vehicle class and UTC day: sums over minutes of each minute''s final emission. Trails traffic_density_1m by a few seconds; no FINAL needed.';

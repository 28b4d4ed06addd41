-- The hourly line-crossings rollup recomputed from the minute facts by refreshable
-- materialized views, replacing the maxMap states of 0006: the pattern 0008 brought to the
-- density rollups, for the same reason.
--
-- Why: reading the maxMap states merges a map of up to 60 minute entries per camera, line,
-- direction, class and hour. Over 3M minute facts (50 cameras, one line each, two ways,
-- three classes, a week) the hourly profile of all cameras took ~3.5 s through
-- line_crossings_1h, against ~0.2 s computing it from line_crossings_1m FINAL: the rollup
-- was slower than what it exists to beat.
--
-- How (as 0008): line_crossings_1m records when each row reached the warehouse (loaded_at,
-- minmax-indexed). Every 5 seconds a refreshable view recomputes each (camera, line, hour)
-- that received a row in the last 15 minutes from line_crossings_1m FINAL, each minute's
-- final emission, and appends it to line_crossings_1h_rows, where the latest recompute wins.
-- A second view recomputes every hour touched in the last day, once an hour, as a repair.
-- line_crossings_1h keeps its name and columns, so the open-data views over it (0009) and
-- the dashboards read it unchanged; it now trails the minute facts by one refresh.

ALTER TABLE {database}.line_crossings_1m
    ADD COLUMN IF NOT EXISTS loaded_at DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC') COMMENT 'When the row reached the warehouse (drives the rollup refresh).';

-- Rows loaded before this migration read as loaded at the epoch: the backfill below rolls
-- them up once, and the refresh never sees them as new.
ALTER TABLE {database}.line_crossings_1m MATERIALIZE COLUMN loaded_at SETTINGS mutations_sync = 2;

ALTER TABLE {database}.line_crossings_1m
    MODIFY COLUMN loaded_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the row reached the warehouse (drives the rollup refresh).';

ALTER TABLE {database}.line_crossings_1m
    ADD INDEX IF NOT EXISTS loaded_at_minmax loaded_at TYPE minmax GRANULARITY 1;

ALTER TABLE {database}.line_crossings_1m MATERIALIZE INDEX loaded_at_minmax SETTINGS mutations_sync = 2;

CREATE TABLE IF NOT EXISTS {database}.line_crossings_1h_rows
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    line_id LowCardinality(String) COMMENT 'Counting line, unique within the camera.',
    direction LowCardinality(String) COMMENT 'The registry''s name for this way across the line.',
    orientation Enum8('positive' = 1, 'negative' = 2) COMMENT 'Way across the line relative to how it is drawn.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus, truck or pedestrian.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with a crossings fact for the line (the camera sent frames).',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    crossings UInt64 COMMENT 'Crossings this way in the hour.',
    pcu Float64 COMMENT 'crossings x PCU factor, summed over the minutes.',
    speed_samples UInt64 COMMENT 'Crossings with a ground-speed estimate.',
    speed_sum Float64 COMMENT 'Sum of speed_kmh_mean x speed_samples over the minutes (for the weighted mean).',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'When this recompute ran; the latest wins.'
)
ENGINE = ReplacingMergeTree(refreshed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (camera_id, line_id, orientation, vehicle_class, direction, hour)
COMMENT 'Rollup rows behind line_crossings_1h, appended by line_crossings_1h_refresh; read the view, not this.';

-- Backfill: everything loaded so far, once.
INSERT INTO {database}.line_crossings_1h_rows
SELECT
    camera_id,
    line_id,
    direction,
    orientation,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    count() AS minutes_covered,
    sum(frames) AS frames,
    sum(crossings) AS crossings,
    sum(pcu) AS pcu,
    sum(speed_samples) AS speed_samples,
    sum(toFloat64(ifNull(speed_kmh_mean, 0)) * line_crossings_1m.speed_samples) AS speed_sum,
    now64(3) AS refreshed_at
FROM {database}.line_crossings_1m FINAL
GROUP BY camera_id, line_id, direction, orientation, vehicle_class, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.line_crossings_1h_refresh
REFRESH EVERY 5 SECOND APPEND TO {database}.line_crossings_1h_rows
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    line_id LowCardinality(String) COMMENT 'Counting line, unique within the camera.',
    direction LowCardinality(String) COMMENT 'The registry''s name for this way across the line.',
    orientation Enum8('positive' = 1, 'negative' = 2) COMMENT 'Way across the line relative to how it is drawn.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus, truck or pedestrian.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with a crossings fact for the line (the camera sent frames).',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    crossings UInt64 COMMENT 'Crossings this way in the hour.',
    pcu Float64 COMMENT 'crossings x PCU factor, summed over the minutes.',
    speed_samples UInt64 COMMENT 'Crossings with a ground-speed estimate.',
    speed_sum Float64 COMMENT 'Sum of speed_kmh_mean x speed_samples over the minutes (for the weighted mean).',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'When this recompute ran; the latest wins.'
)
AS SELECT
    camera_id,
    line_id,
    direction,
    orientation,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    count() AS minutes_covered,
    sum(frames) AS frames,
    sum(crossings) AS crossings,
    sum(pcu) AS pcu,
    sum(speed_samples) AS speed_samples,
    sum(toFloat64(ifNull(speed_kmh_mean, 0)) * line_crossings_1m.speed_samples) AS speed_sum,
    now64(3) AS refreshed_at
FROM {database}.line_crossings_1m FINAL
WHERE (camera_id, line_id, toStartOfHour(window_start)) IN (
    SELECT camera_id, line_id, toStartOfHour(window_start)
    FROM {database}.line_crossings_1m
    WHERE loaded_at >= now64(3) - INTERVAL 15 MINUTE
)
GROUP BY camera_id, line_id, direction, orientation, vehicle_class, hour
COMMENT 'Every 5 s: recomputes the hours of the lines that received minute facts in the last 15 minutes.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.line_crossings_1h_repair
REFRESH EVERY 1 HOUR APPEND TO {database}.line_crossings_1h_rows
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    line_id LowCardinality(String) COMMENT 'Counting line, unique within the camera.',
    direction LowCardinality(String) COMMENT 'The registry''s name for this way across the line.',
    orientation Enum8('positive' = 1, 'negative' = 2) COMMENT 'Way across the line relative to how it is drawn.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus, truck or pedestrian.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with a crossings fact for the line (the camera sent frames).',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    crossings UInt64 COMMENT 'Crossings this way in the hour.',
    pcu Float64 COMMENT 'crossings x PCU factor, summed over the minutes.',
    speed_samples UInt64 COMMENT 'Crossings with a ground-speed estimate.',
    speed_sum Float64 COMMENT 'Sum of speed_kmh_mean x speed_samples over the minutes (for the weighted mean).',
    refreshed_at DateTime64(3, 'UTC') COMMENT 'When this recompute ran; the latest wins.'
)
AS SELECT
    camera_id,
    line_id,
    direction,
    orientation,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    count() AS minutes_covered,
    sum(frames) AS frames,
    sum(crossings) AS crossings,
    sum(pcu) AS pcu,
    sum(speed_samples) AS speed_samples,
    sum(toFloat64(ifNull(speed_kmh_mean, 0)) * line_crossings_1m.speed_samples) AS speed_sum,
    now64(3) AS refreshed_at
FROM {database}.line_crossings_1m FINAL
WHERE (camera_id, line_id, toStartOfHour(window_start)) IN (
    SELECT camera_id, line_id, toStartOfHour(window_start)
    FROM {database}.line_crossings_1m
    WHERE loaded_at >= now64(3) - INTERVAL 1 DAY
)
GROUP BY camera_id, line_id, direction, orientation, vehicle_class, hour
COMMENT 'Every hour: recomputes the hours of the lines that received minute facts in the last day (repair).';

CREATE OR REPLACE VIEW {database}.line_crossings_1h
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    line_id LowCardinality(String) COMMENT 'Counting line, unique within the camera.',
    direction LowCardinality(String) COMMENT 'The registry''s name for this way across the line.',
    orientation Enum8('positive' = 1, 'negative' = 2) COMMENT 'Way across the line relative to how it is drawn.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus, truck or pedestrian.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with a crossings fact for the line (the camera sent frames).',
    frames UInt64 COMMENT 'Sampled frames over those minutes.',
    crossings UInt64 COMMENT 'Crossings this way in the hour.',
    pcu Float64 COMMENT 'crossings x PCU factor, summed over the minutes.',
    pcu_per_hour Float64 COMMENT 'Flow rate over the minutes covered: pcu x 60 / minutes_covered.',
    speed_samples UInt64 COMMENT 'Crossings with a ground-speed estimate.',
    speed_kmh_mean Nullable(Float64) COMMENT 'Mean ground speed of those crossings, km/h (weighted by samples); NULL without samples.'
)
AS SELECT
    camera_id,
    line_id,
    direction,
    orientation,
    vehicle_class,
    hour,
    minutes_covered,
    frames,
    crossings,
    pcu,
    if(minutes_covered = 0, 0, pcu * 60 / minutes_covered) AS pcu_per_hour,
    speed_samples,
    if(speed_samples = 0, NULL, speed_sum / speed_samples) AS speed_kmh_mean
FROM {database}.line_crossings_1h_rows FINAL
COMMENT 'Line crossings per camera, line, direction, class and hour: sums over minutes of each minute''s final emission. Trails line_crossings_1m by a few seconds; no FINAL needed.';

DROP VIEW IF EXISTS {database}.line_crossings_1h_mv;

DROP TABLE IF EXISTS {database}.line_crossings_1h_state;

-- Facts from the streams job's counting geometry (schemas/facts.py): LineCrossings 1-0-0 into
-- line_crossings_1m, ZoneOccupancy 1-0-0 into zone_occupancy_1m, and an hourly line-crossings
-- rollup kept by a materialized view (the maxMap pattern of traffic_density_1h, 0002).
--
-- Both facts are emitted like traffic_density_1m: the window's running totals, again whenever
-- they change. Within a window `frames` only grows, so ReplacingMergeTree(frames) keeps the
-- latest emission; the sorting key is the fact's identity, so a repeat collapses.
--
-- line_crossings_1m is RECREATED. 0002 created it ahead of any stage that fills it, with
-- direction Enum8('in', 'out'); directions are now the names each line gives its two ways in
-- the camera registry (eastbound, towards-market, ...), plus their orientation relative to the
-- line as drawn, and the fact gained frames, pcu_per_hour and a version column. No release
-- ever wrote to the table (nothing produced the fact before this migration), so dropping it
-- loses nothing and leaves one clean definition, where ALTERs would keep a dead Enum column
-- beside the new one for ever. The first statement makes the migration stop, before it drops
-- anything, should the table hold rows after all: forward-only stays safe.

SELECT throwIf(count() > 0, 'line_crossings_1m holds rows: migrate them before 0006 recreates the table') FROM {database}.line_crossings_1m;

DROP TABLE IF EXISTS {database}.line_crossings_1m;

-- ORDER BY serves the main read, one line's counts over a time range (both ways, all
-- classes), and is the identity. The way is keyed by orientation, not by its name, so a
-- direction renamed in the registry replaces rather than duplicates a re-emitted minute.
CREATE TABLE IF NOT EXISTS {database}.line_crossings_1m
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    line_id LowCardinality(String) COMMENT 'Counting line, unique within the camera (registry geometry.lines).',
    window_start DateTime('UTC') COMMENT 'Start of the one-minute window.',
    window_end DateTime('UTC') COMMENT 'End of the window (exclusive).',
    direction LowCardinality(String) COMMENT 'The registry''s name for this way across the line, e.g. eastbound.',
    orientation Enum8('positive' = 1, 'negative' = 2) COMMENT 'positive: from the left-hand to the right-hand side of the line as drawn (points[0] to points[1], y down); negative: the other way.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus, truck, or pedestrian (a person not riding a vehicle).',
    frames UInt32 COMMENT 'Sampled frames of the camera in the window; the version of the row (the emission with most frames wins).',
    crossings UInt32 COMMENT 'Tracked road users of the class that crossed the line this way in the window (one per crossing; a turn back counts again, the other way).',
    pcu_factor Float32 COMMENT 'Passenger-car-unit factor of the class; 0 for pedestrians.',
    pcu Float64 COMMENT 'crossings x pcu_factor.',
    pcu_per_hour Float64 COMMENT 'Flow rate: pcu scaled to one hour (pcu x 3600 / window seconds).',
    pcu_version LowCardinality(String) COMMENT 'Which PCU factor table was applied (chosen by the camera''s road class).',
    speed_samples UInt32 COMMENT 'Crossings with a ground-speed estimate (cameras with a homography only).',
    speed_kmh_mean Nullable(Float32) COMMENT 'Mean ground speed of those crossings, km/h; NULL when speed_samples is 0.',
    speed_kmh_p85 Nullable(Float32) COMMENT '85th percentile ground speed of those crossings, km/h; NULL when speed_samples is 0.',
    emitted_at DateTime64(3, 'UTC') COMMENT 'When the stream emitted this version of the fact.'
)
ENGINE = ReplacingMergeTree(frames)
PARTITION BY toYYYYMM(window_start)
ORDER BY (camera_id, line_id, window_start, orientation, vehicle_class)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Fact: road users crossing a counting line per camera, line, direction, class and minute, zeros included. Re-emitted as the window fills; the version with most frames wins (use FINAL).';

-- ORDER BY serves "this zone over a time range" and is the identity.
CREATE TABLE IF NOT EXISTS {database}.zone_occupancy_1m
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    zone_id LowCardinality(String) COMMENT 'Zone, unique within the camera (registry geometry.zones).',
    zone_kind LowCardinality(Nullable(String)) COMMENT 'The zone''s kind in the registry (junction, parking, crossing, ...); NULL if not given.',
    window_start DateTime('UTC') COMMENT 'Start of the one-minute window.',
    window_end DateTime('UTC') COMMENT 'End of the window (exclusive).',
    frames UInt32 COMMENT 'Sampled frames of the camera in the window; the version of the row (the emission with most frames wins).',
    objects UInt32 COMMENT 'Road users (vehicles and pedestrians, riders not counted) whose ground anchor is inside the zone, summed over those frames.',
    mean_objects Float32 COMMENT 'objects / frames: mean road users inside the zone.',
    max_objects UInt16 COMMENT 'Most road users inside the zone on one frame.',
    occupied_frames UInt32 COMMENT 'Frames with at least one road user inside.',
    occupied_share Float32 COMMENT 'occupied_frames / frames, 0..1.',
    mean_pcu Float32 COMMENT 'Mean passenger car units inside the zone per frame (pedestrians weigh 0).',
    pcu_version LowCardinality(String) COMMENT 'Which PCU factor table was applied.',
    mean_objects_by_class Map(LowCardinality(String), Float32) COMMENT 'Mean road users inside per frame, per class seen in the window (classes never seen are absent).',
    emitted_at DateTime64(3, 'UTC') COMMENT 'When the stream emitted this version of the fact.'
)
ENGINE = ReplacingMergeTree(frames)
PARTITION BY toYYYYMM(window_start)
ORDER BY (camera_id, zone_id, window_start)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Fact: road users inside a camera''s zone per camera, zone and minute, zeros included. Re-emitted as the window fills; the version with most frames wins (use FINAL).';

-- ---------------------------------------------------------------------------------------------
-- Hourly line-crossing rollup. As for density (0002): a minute's right value is its largest
-- emission, so the state keeps, per measure, a maxMap keyed by window_start; merging takes
-- the per-minute maximum (idempotent, order-independent) and the view sums the minutes.
-- crossings, pcu, speed_samples and the speed sum only grow with frames within a window, so
-- their per-minute maxima are the final emission's values. The 85th percentile cannot be
-- rolled up from minute percentiles and is left out; the hourly mean speed is weighted by
-- speed samples. The table is new, so no backfill is needed.

CREATE TABLE IF NOT EXISTS {database}.line_crossings_1h_state
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    line_id LowCardinality(String) COMMENT 'Counting line, unique within the camera.',
    direction LowCardinality(String) COMMENT 'The registry''s name for this way across the line.',
    orientation Enum8('positive' = 1, 'negative' = 2) COMMENT 'Way across the line relative to how it is drawn.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus, truck or pedestrian.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    frames_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest frames emitted per window_start of the hour.',
    crossings_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest crossings emitted per window_start of the hour.',
    pcu_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(Float64)) COMMENT 'State: largest pcu emitted per window_start of the hour.',
    speed_samples_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest speed_samples emitted per window_start of the hour.',
    speed_sum_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(Float64)) COMMENT 'State: largest speed_kmh_mean x speed_samples emitted per window_start of the hour.'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (camera_id, line_id, orientation, vehicle_class, direction, hour)
COMMENT 'Rollup state behind line_crossings_1h (kept by line_crossings_1h_mv); read the view, not this.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.line_crossings_1h_mv
TO {database}.line_crossings_1h_state
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    line_id LowCardinality(String) COMMENT 'Counting line, unique within the camera.',
    direction LowCardinality(String) COMMENT 'The registry''s name for this way across the line.',
    orientation Enum8('positive' = 1, 'negative' = 2) COMMENT 'Way across the line relative to how it is drawn.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus, truck or pedestrian.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    frames_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest frames emitted per window_start of the hour.',
    crossings_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest crossings emitted per window_start of the hour.',
    pcu_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(Float64)) COMMENT 'State: largest pcu emitted per window_start of the hour.',
    speed_samples_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest speed_samples emitted per window_start of the hour.',
    speed_sum_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(Float64)) COMMENT 'State: largest speed_kmh_mean x speed_samples emitted per window_start of the hour.'
)
AS SELECT
    camera_id,
    line_id,
    direction,
    orientation,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    maxMapState([window_start], [frames]) AS frames_by_minute,
    maxMapState([window_start], [crossings]) AS crossings_by_minute,
    maxMapState([window_start], [pcu]) AS pcu_by_minute,
    maxMapState([window_start], [speed_samples]) AS speed_samples_by_minute,
    maxMapState([window_start], [toFloat64(ifNull(speed_kmh_mean, 0)) * speed_samples]) AS speed_sum_by_minute
FROM {database}.line_crossings_1m
GROUP BY camera_id, line_id, direction, orientation, vehicle_class, hour
COMMENT 'Keeps line_crossings_1h_state from every insert into line_crossings_1m.';

CREATE VIEW IF NOT EXISTS {database}.line_crossings_1h
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
    length(f.1) AS minutes_covered,
    arraySum(f.2) AS frames,
    arraySum(c.2) AS crossings,
    arraySum(p.2) AS pcu,
    if(minutes_covered = 0, 0, pcu * 60 / minutes_covered) AS pcu_per_hour,
    arraySum(n.2) AS speed_samples,
    if(speed_samples = 0, NULL, arraySum(s.2) / speed_samples) AS speed_kmh_mean
FROM
(
    SELECT
        camera_id,
        line_id,
        direction,
        orientation,
        vehicle_class,
        hour,
        maxMapMerge(frames_by_minute) AS f,
        maxMapMerge(crossings_by_minute) AS c,
        maxMapMerge(pcu_by_minute) AS p,
        maxMapMerge(speed_samples_by_minute) AS n,
        maxMapMerge(speed_sum_by_minute) AS s
    FROM {database}.line_crossings_1h_state
    GROUP BY camera_id, line_id, direction, orientation, vehicle_class, hour
)
COMMENT 'Line crossings per camera, line, direction, class and hour: sums over minutes of each minute''s final emission. Correct before and after merges; no FINAL needed.';

-- The city model: dimensions from the camera registry, fact tables for the later stages,
-- hourly and daily traffic rollups kept by materialized views, and the open-data views.
--
-- Conventions (as in 0001): every fact is keyed by its identity, so an at-least-once repeat
-- collapses in a ReplacingMergeTree; camera_id always joins to dim_camera; times are UTC;
-- vocabularies that will grow (violation types, event types, road classes) are
-- LowCardinality(String) rather than Enum so new values need no schema change.

ALTER DATABASE {database} MODIFY COMMENT 'citycam warehouse: raw detections, traffic facts and rollups, dimensions, operations. Analysts read here; the public reads open_data.';

-- ---------------------------------------------------------------------------------------------
-- Dimensions, loaded from the camera registry by warehouse/dimensions.py (`citycam warehouse
-- load-dimensions`, also run by `citycam warehouse migrate`). Each load inserts a new version
-- of every row with a later loaded_at; ReplacingMergeTree(loaded_at) keeps the latest, so a
-- reload is idempotent and a changed camera updates. Rows leaving the registry are kept (facts
-- still reference them) with in_registry = false. Small tables: read them with FINAL.

CREATE TABLE IF NOT EXISTS {database}.dim_camera
(
    camera_id String COMMENT 'Camera registry id; the camera_id of every fact table.',
    name String COMMENT 'Human-readable camera name.',
    lat Float64 COMMENT 'Latitude, WGS84 degrees.',
    lon Float64 COMMENT 'Longitude, WGS84 degrees.',
    district String COMMENT 'District the camera stands in (dim_district.district).',
    road_segment Nullable(String) COMMENT 'Road segment the camera watches (dim_road_segment.road_segment); NULL if not registered.',
    road_class Nullable(String) COMMENT 'Class of that road, e.g. urban arterial; NULL if not registered.',
    source_kind Enum8('stream' = 1, 'file' = 2) COMMENT 'Network stream or video file. The source URL itself is never stored: it can hold credentials.',
    sample_fps Float32 COMMENT 'Frames per second sampled; sums over frames (detections, pcu) scale with it.',
    enabled Bool COMMENT 'Whether ingest reads the camera.',
    in_registry Bool COMMENT 'False once the camera left the registry; the row stays for the facts that reference it.',
    loaded_at DateTime64(6, 'UTC') COMMENT 'When this version was loaded; the latest version wins (query with FINAL).'
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY camera_id
COMMENT 'Dimension: one row per camera of the registry (latest load wins; use FINAL).';

CREATE TABLE IF NOT EXISTS {database}.dim_district
(
    district String COMMENT 'District name as written in the camera registry.',
    cameras UInt32 COMMENT 'Registry cameras in the district at its last load.',
    lat Float64 COMMENT 'Mean latitude of those cameras (a label position, not the district centroid).',
    lon Float64 COMMENT 'Mean longitude of those cameras.',
    in_registry Bool COMMENT 'False once no registry camera names the district any more.',
    loaded_at DateTime64(6, 'UTC') COMMENT 'When this version was loaded; the latest version wins (query with FINAL).'
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY district
COMMENT 'Dimension: districts that have cameras, derived from the registry (use FINAL).';

CREATE TABLE IF NOT EXISTS {database}.dim_road_segment
(
    road_segment String COMMENT 'Road segment id as written in the camera registry, e.g. le-loi-1.',
    road_class Nullable(String) COMMENT 'Road class, e.g. urban arterial; NULL if no camera gives one (the loader refuses conflicting classes).',
    districts Array(String) COMMENT 'Districts of the cameras on the segment, sorted.',
    cameras UInt32 COMMENT 'Registry cameras watching the segment at its last load.',
    in_registry Bool COMMENT 'False once no registry camera names the segment any more.',
    loaded_at DateTime64(6, 'UTC') COMMENT 'When this version was loaded; the latest version wins (query with FINAL).'
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY road_segment
COMMENT 'Dimension: road segments watched by cameras, derived from the registry (use FINAL).';

-- ---------------------------------------------------------------------------------------------
-- Facts for later stages (empty until those stages exist).

-- Filled by a tracking stage like traffic_density_1m: running totals re-emitted as the minute
-- fills, so the emission with most crossings wins (crossings only grow within a window).
-- ORDER BY serves the main read, one line's counts over a time range (both directions, all
-- classes), and is the fact's identity so a repeat collapses.
CREATE TABLE IF NOT EXISTS {database}.line_crossings_1m
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    line_id LowCardinality(String) COMMENT 'Counting line, unique within the camera.',
    window_start DateTime('UTC') COMMENT 'Start of the one-minute window.',
    window_end DateTime('UTC') COMMENT 'End of the window (exclusive).',
    direction Enum8('in' = 1, 'out' = 2) COMMENT 'Crossing direction relative to the line''s defined orientation.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    crossings UInt32 COMMENT 'Distinct tracked vehicles that crossed the line in the window.',
    speed_samples UInt32 COMMENT 'Crossings with a speed estimate (calibrated cameras only).',
    speed_kmh_mean Nullable(Float32) COMMENT 'Mean speed of those crossings, km/h; NULL where speed is unknown.',
    speed_kmh_p85 Nullable(Float32) COMMENT '85th percentile speed of those crossings, km/h; NULL where speed is unknown.',
    pcu_factor Float32 COMMENT 'Passenger-car-unit factor applied to the class.',
    pcu Float64 COMMENT 'crossings x pcu_factor.',
    pcu_version LowCardinality(String) COMMENT 'Which PCU factor table was applied.',
    emitted_at DateTime64(3, 'UTC') COMMENT 'When the stream emitted this version of the fact.'
)
ENGINE = ReplacingMergeTree(crossings)
PARTITION BY toYYYYMM(window_start)
ORDER BY (camera_id, line_id, window_start, direction, vehicle_class)
COMMENT 'Fact: vehicles crossing a counting line per camera, line, direction, class and minute. Re-emitted as the window fills; the version with most crossings wins (use FINAL).';

-- Event level. Identity is (camera, type, first sighting, dedup key): the producer must give
-- every sighting of one offence the same dedup_key and occurred_at (its first sighting), so
-- repeats and re-detections collapse; a review re-inserts the row with a later updated_at.
-- ORDER BY serves "this camera's (or this type's) violations in a time range".
-- plate_text is personal data: it expires after 90 days and is never published.
CREATE TABLE IF NOT EXISTS {database}.violations
(
    violation_id String COMMENT 'Deterministic id of the violation (derived from dedup_key), for evidence and review references.',
    dedup_key String COMMENT 'Identity of one offence across frames and re-deliveries (e.g. camera, type, track and signal cycle).',
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    violation_type LowCardinality(String) COMMENT 'red_light, wrong_way, no_helmet, overload, illegal_parking, ...',
    occurred_at DateTime64(3, 'UTC') COMMENT 'First sighting of the offence.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    track_id Nullable(UInt64) COMMENT 'Tracker id of the vehicle on that camera (internal; not published).',
    severity Enum8('low' = 1, 'medium' = 2, 'high' = 3) COMMENT 'Severity assigned by the rule that raised it.',
    confidence Float32 COMMENT 'Confidence of the detection, 0..1.',
    evidence_frame_uri String COMMENT 'Frame store URI of the evidence frame (internal; may have expired).',
    plate_text Nullable(String) TTL toDateTime(occurred_at) + INTERVAL 90 DAY COMMENT 'Recognised plate: PERSONAL DATA, restricted, cleared after 90 days, never in open data.',
    review_status Enum8('pending' = 1, 'confirmed' = 2, 'rejected' = 3) COMMENT 'Human review outcome; pending until reviewed.',
    model_name LowCardinality(String) COMMENT 'Detector or rule engine that raised it.',
    model_version LowCardinality(String) COMMENT 'Its version.',
    updated_at DateTime64(3, 'UTC') COMMENT 'Version of the row: the latest wins (raised, then reviewed).'
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (camera_id, violation_type, occurred_at, dedup_key)
COMMENT 'Fact: traffic violations, one row per offence (latest version wins; use FINAL). Restricted: holds personal data.';

-- Event level: an event opens (ended_at NULL) and is re-inserted as it evolves and when it ends.
-- ORDER BY serves "events of this camera/type in a time range"; event_id ends the identity.
CREATE TABLE IF NOT EXISTS {database}.environmental_events
(
    event_id String COMMENT 'Deterministic id of the event.',
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    event_type LowCardinality(String) COMMENT 'fire, smoke, straw_burning, flood, ...',
    started_at DateTime64(3, 'UTC') COMMENT 'First frame showing the event.',
    ended_at Nullable(DateTime64(3, 'UTC')) COMMENT 'Last frame showing it; NULL while ongoing.',
    confidence Float32 COMMENT 'Highest detector confidence so far, 0..1.',
    level Nullable(Float32) COMMENT 'Magnitude where measured (e.g. flood water level); NULL otherwise.',
    level_unit LowCardinality(String) COMMENT 'Unit of level, e.g. cm; empty when level is NULL.',
    area_share Nullable(Float32) COMMENT 'Largest share of the frame covered (smoke, fire), 0..1; NULL if not measured.',
    evidence_frame_uri String COMMENT 'Frame store URI of the most telling frame (internal; may have expired).',
    model_name LowCardinality(String) COMMENT 'Detector that raised it.',
    model_version LowCardinality(String) COMMENT 'Its version.',
    updated_at DateTime64(3, 'UTC') COMMENT 'Version of the row: the latest wins.'
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (camera_id, event_type, started_at, event_id)
COMMENT 'Fact: environmental events seen by cameras (fire, smoke, straw burning, flooding), one row per event (latest version wins; use FINAL).';

-- One report per camera and minute from ingest; a repeated report replaces the earlier one.
-- ORDER BY serves "this camera's health over time" and is the identity.
CREATE TABLE IF NOT EXISTS {database}.camera_health_1m
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    window_start DateTime('UTC') COMMENT 'Start of the one-minute window.',
    window_end DateTime('UTC') COMMENT 'End of the window (exclusive).',
    frames_decoded UInt32 COMMENT 'Frames decoded from the source.',
    frames_published UInt32 COMMENT 'Sampled frames stored and published to the pipeline.',
    decode_errors UInt32 COMMENT 'Frames or packets that failed to decode.',
    reconnects UInt16 COMMENT 'Times the source was (re)opened.',
    fps Float32 COMMENT 'frames_published per second of the window.',
    target_fps Float32 COMMENT 'The configured sample rate (dim_camera.sample_fps at the time).',
    up_share Float32 COMMENT 'Share of the window the source delivered frames, 0..1.',
    lag_ms_mean Float32 COMMENT 'Mean delay from capture to publish, ms.',
    lag_ms_max Float32 COMMENT 'Largest delay from capture to publish, ms.',
    emitted_at DateTime64(3, 'UTC') COMMENT 'When the report was emitted; the latest wins.'
)
ENGINE = ReplacingMergeTree(emitted_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (camera_id, window_start)
COMMENT 'Operations fact: camera and ingest health per camera and minute (use FINAL).';

-- ---------------------------------------------------------------------------------------------
-- Traffic density rollups.
--
-- traffic_density_1m receives every emission of a window (running totals that only grow) and
-- possibly the same emission twice. A materialized view sees each inserted row before any
-- merge, so a sum() rollup would count every emission and every duplicate. The right value of
-- a minute is its largest emission; so each rollup row holds, per measure, a maxMap state
-- keyed by window_start: merging states takes the per-minute max, which is idempotent
-- (duplicates), order-independent (late or early emissions) and associative (parts merge in
-- any order). Views sum the per-minute maxima. Because frames, detections, pcu and
-- max_in_view all grow together within a window, the per-measure maxima are the values of
-- the emission with most frames, i.e. what traffic_density_1m FINAL keeps.
-- Idempotence also makes the backfill below safe while the sink is writing (a row the
-- MV and the backfill both see counts once). Cost: a state carries up to 60 (hourly) or 1440
-- (daily) minute entries per camera and class, still far fewer rows than the minute table.
-- Days are UTC days; local days are sum() over traffic_density_1h by toDate(hour, tz).

CREATE TABLE IF NOT EXISTS {database}.traffic_density_1h_state
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    frames_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest frames emitted per window_start of the hour.',
    detections_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest detections emitted per window_start of the hour.',
    pcu_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(Float64)) COMMENT 'State: largest pcu emitted per window_start of the hour.',
    max_in_view SimpleAggregateFunction(max, UInt16) COMMENT 'Most vehicles of the class seen in one frame during the hour.'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (camera_id, vehicle_class, hour)
COMMENT 'Rollup state behind traffic_density_1h (kept by traffic_density_1h_mv); read the view, not this.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.traffic_density_1h_mv
TO {database}.traffic_density_1h_state
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    hour DateTime('UTC') COMMENT 'Start of the hour.',
    frames_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest frames emitted per window_start of the hour.',
    detections_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest detections emitted per window_start of the hour.',
    pcu_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(Float64)) COMMENT 'State: largest pcu emitted per window_start of the hour.',
    max_in_view SimpleAggregateFunction(max, UInt16) COMMENT 'Most vehicles of the class seen in one frame during the hour.'
)
AS SELECT
    camera_id,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    maxMapState([window_start], [frames]) AS frames_by_minute,
    maxMapState([window_start], [detections]) AS detections_by_minute,
    maxMapState([window_start], [pcu]) AS pcu_by_minute,
    max(max_in_view) AS max_in_view
FROM {database}.traffic_density_1m
GROUP BY camera_id, vehicle_class, hour
COMMENT 'Keeps traffic_density_1h_state from every insert into traffic_density_1m.';

INSERT INTO {database}.traffic_density_1h_state
SELECT
    camera_id,
    vehicle_class,
    toStartOfHour(window_start) AS hour,
    maxMapState([window_start], [frames]),
    maxMapState([window_start], [detections]),
    maxMapState([window_start], [pcu]),
    max(max_in_view)
FROM {database}.traffic_density_1m
GROUP BY camera_id, vehicle_class, hour;

CREATE TABLE IF NOT EXISTS {database}.traffic_density_1d_state
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    day Date COMMENT 'UTC day.',
    frames_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest frames emitted per window_start of the day.',
    detections_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest detections emitted per window_start of the day.',
    pcu_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(Float64)) COMMENT 'State: largest pcu emitted per window_start of the day.',
    max_in_view SimpleAggregateFunction(max, UInt16) COMMENT 'Most vehicles of the class seen in one frame during the day.'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
ORDER BY (camera_id, vehicle_class, day)
COMMENT 'Rollup state behind traffic_density_1d (kept by traffic_density_1d_mv); read the view, not this.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.traffic_density_1d_mv
TO {database}.traffic_density_1d_state
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    day Date COMMENT 'UTC day.',
    frames_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest frames emitted per window_start of the day.',
    detections_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(UInt32)) COMMENT 'State: largest detections emitted per window_start of the day.',
    pcu_by_minute AggregateFunction(maxMap, Array(DateTime('UTC')), Array(Float64)) COMMENT 'State: largest pcu emitted per window_start of the day.',
    max_in_view SimpleAggregateFunction(max, UInt16) COMMENT 'Most vehicles of the class seen in one frame during the day.'
)
AS SELECT
    camera_id,
    vehicle_class,
    toDate(window_start) AS day,
    maxMapState([window_start], [frames]) AS frames_by_minute,
    maxMapState([window_start], [detections]) AS detections_by_minute,
    maxMapState([window_start], [pcu]) AS pcu_by_minute,
    max(max_in_view) AS max_in_view
FROM {database}.traffic_density_1m
GROUP BY camera_id, vehicle_class, day
COMMENT 'Keeps traffic_density_1d_state from every insert into traffic_density_1m.';

INSERT INTO {database}.traffic_density_1d_state
SELECT
    camera_id,
    vehicle_class,
    toDate(window_start) AS day,
    maxMapState([window_start], [frames]),
    maxMapState([window_start], [detections]),
    maxMapState([window_start], [pcu]),
    max(max_in_view)
FROM {database}.traffic_density_1m
GROUP BY camera_id, vehicle_class, day;

-- Readable rollups. mean_in_view is frame-weighted (detections / frames), so minutes with more
-- sampled frames weigh more and the figure does not depend on how many minutes were covered.

CREATE VIEW IF NOT EXISTS {database}.traffic_density_1h
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
    length(f.1) AS minutes_covered,
    arraySum(f.2) AS frames,
    arraySum(d.2) AS detections,
    if(frames = 0, 0, detections / frames) AS mean_in_view,
    max_in_view,
    arraySum(p.2) AS pcu,
    if(frames = 0, 0, pcu / frames) AS mean_pcu_in_view
FROM
(
    SELECT
        camera_id,
        vehicle_class,
        hour,
        maxMapMerge(frames_by_minute) AS f,
        maxMapMerge(detections_by_minute) AS d,
        maxMapMerge(pcu_by_minute) AS p,
        max(max_in_view) AS max_in_view
    FROM {database}.traffic_density_1h_state
    GROUP BY camera_id, vehicle_class, hour
)
COMMENT 'Traffic density per camera, vehicle class and hour: sums over minutes of each minute''s final emission. Correct before and after merges; no FINAL needed.';

CREATE VIEW IF NOT EXISTS {database}.traffic_density_1d
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
    length(f.1) AS minutes_covered,
    arraySum(f.2) AS frames,
    arraySum(d.2) AS detections,
    if(frames = 0, 0, detections / frames) AS mean_in_view,
    max_in_view,
    arraySum(p.2) AS pcu,
    if(frames = 0, 0, pcu / frames) AS mean_pcu_in_view
FROM
(
    SELECT
        camera_id,
        vehicle_class,
        day,
        maxMapMerge(frames_by_minute) AS f,
        maxMapMerge(detections_by_minute) AS d,
        maxMapMerge(pcu_by_minute) AS p,
        max(max_in_view) AS max_in_view
    FROM {database}.traffic_density_1d_state
    GROUP BY camera_id, vehicle_class, day
)
COMMENT 'Traffic density per camera, vehicle class and UTC day: sums over minutes of each minute''s final emission. No FINAL needed.';

CREATE VIEW IF NOT EXISTS {database}.traffic_density_1m_latest
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    window_start DateTime('UTC') COMMENT 'Start of the one-minute window.',
    window_end DateTime('UTC') COMMENT 'End of the window (exclusive).',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    frames UInt32 COMMENT 'Sampled frames of the camera in the window.',
    detections UInt32 COMMENT 'Boxes of the class summed over those frames.',
    mean_in_view Float32 COMMENT 'Mean vehicles of the class in view (detections / frames).',
    max_in_view UInt16 COMMENT 'Most vehicles of the class seen in one frame.',
    pcu_factor Float32 COMMENT 'Passenger-car-unit factor applied to the class.',
    pcu Float64 COMMENT 'detections x pcu_factor.',
    pcu_version LowCardinality(String) COMMENT 'Which PCU factor table was applied.',
    emitted_at DateTime64(3, 'UTC') COMMENT 'When the stream emitted this (final) version of the fact.'
)
AS SELECT
    camera_id,
    window_start,
    window_end,
    vehicle_class,
    frames,
    detections,
    mean_in_view,
    max_in_view,
    pcu_factor,
    pcu,
    pcu_version,
    emitted_at
FROM {database}.traffic_density_1m FINAL
COMMENT 'traffic_density_1m with only the final emission of each window (FINAL applied for you).';

-- ---------------------------------------------------------------------------------------------
-- Open data: the database the `opendata` role is confined to. Views only, published columns
-- only: no frame URIs, track ids, plates, source URLs or model internals; violations only as
-- daily counts. open_data is one per server, so it publishes the last database this migration
-- was applied to (OR REPLACE re-points the views): in production the only one. A later
-- migration that changes these views re-points them the same way.

CREATE DATABASE IF NOT EXISTS open_data;

ALTER DATABASE open_data MODIFY COMMENT 'Published open data: views over the citycam warehouse, safe for anyone to read.';

CREATE OR REPLACE VIEW open_data.cameras
(
    camera_id String COMMENT 'Camera id.',
    camera_name String COMMENT 'Camera name.',
    district String COMMENT 'District the camera stands in.',
    road_segment Nullable(String) COMMENT 'Road segment it watches, if known.',
    road_class Nullable(String) COMMENT 'Class of that road, if known.',
    lat Float64 COMMENT 'Latitude, WGS84 degrees.',
    lon Float64 COMMENT 'Longitude, WGS84 degrees.',
    active Bool COMMENT 'Whether the camera currently delivers data.'
)
AS SELECT
    camera_id,
    name AS camera_name,
    district,
    road_segment,
    road_class,
    lat,
    lon,
    enabled AND in_registry AS active
FROM {database}.dim_camera FINAL
COMMENT 'Open data: the city''s traffic cameras and where they are.';

CREATE OR REPLACE VIEW open_data.traffic_density_hourly
(
    camera_id String COMMENT 'Camera id (see cameras).',
    camera_name String COMMENT 'Camera name.',
    district String COMMENT 'District the camera stands in.',
    road_segment Nullable(String) COMMENT 'Road segment it watches, if known.',
    lat Float64 COMMENT 'Latitude, WGS84 degrees.',
    lon Float64 COMMENT 'Longitude, WGS84 degrees.',
    hour DateTime('UTC') COMMENT 'Start of the hour, UTC.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour with data.',
    vehicle_detections UInt64 COMMENT 'Vehicles seen, summed over sampled frames: a vehicle in view for several frames counts several times. Compare cameras with mean_vehicles_in_view.',
    mean_vehicles_in_view Float64 COMMENT 'Average number of vehicles of the class in view.',
    max_vehicles_in_view UInt16 COMMENT 'Most vehicles of the class in view at once.',
    pcu Float64 COMMENT 'Passenger car units, summed like vehicle_detections.',
    mean_pcu_in_view Float64 COMMENT 'Average passenger car units in view.'
)
AS SELECT
    h.camera_id AS camera_id,
    c.name AS camera_name,
    c.district AS district,
    c.road_segment AS road_segment,
    c.lat AS lat,
    c.lon AS lon,
    h.hour AS hour,
    h.vehicle_class AS vehicle_class,
    h.minutes_covered AS minutes_covered,
    h.detections AS vehicle_detections,
    h.mean_in_view AS mean_vehicles_in_view,
    h.max_in_view AS max_vehicles_in_view,
    h.pcu AS pcu,
    h.mean_pcu_in_view AS mean_pcu_in_view
FROM {database}.traffic_density_1h AS h
INNER JOIN (SELECT camera_id, name, district, road_segment, lat, lon FROM {database}.dim_camera FINAL) AS c
    ON h.camera_id = c.camera_id
COMMENT 'Open data: traffic density per camera, vehicle class and hour (cameras of the registry only).';

CREATE OR REPLACE VIEW open_data.traffic_density_daily
(
    camera_id String COMMENT 'Camera id (see cameras).',
    camera_name String COMMENT 'Camera name.',
    district String COMMENT 'District the camera stands in.',
    road_segment Nullable(String) COMMENT 'Road segment it watches, if known.',
    lat Float64 COMMENT 'Latitude, WGS84 degrees.',
    lon Float64 COMMENT 'Longitude, WGS84 degrees.',
    day Date COMMENT 'UTC day.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    minutes_covered UInt64 COMMENT 'Minutes of the day with data.',
    vehicle_detections UInt64 COMMENT 'Vehicles seen, summed over sampled frames: a vehicle in view for several frames counts several times. Compare cameras with mean_vehicles_in_view.',
    mean_vehicles_in_view Float64 COMMENT 'Average number of vehicles of the class in view.',
    max_vehicles_in_view UInt16 COMMENT 'Most vehicles of the class in view at once.',
    pcu Float64 COMMENT 'Passenger car units, summed like vehicle_detections.',
    mean_pcu_in_view Float64 COMMENT 'Average passenger car units in view.'
)
AS SELECT
    d.camera_id AS camera_id,
    c.name AS camera_name,
    c.district AS district,
    c.road_segment AS road_segment,
    c.lat AS lat,
    c.lon AS lon,
    d.day AS day,
    d.vehicle_class AS vehicle_class,
    d.minutes_covered AS minutes_covered,
    d.detections AS vehicle_detections,
    d.mean_in_view AS mean_vehicles_in_view,
    d.max_in_view AS max_vehicles_in_view,
    d.pcu AS pcu,
    d.mean_pcu_in_view AS mean_pcu_in_view
FROM {database}.traffic_density_1d AS d
INNER JOIN (SELECT camera_id, name, district, road_segment, lat, lon FROM {database}.dim_camera FINAL) AS c
    ON d.camera_id = c.camera_id
COMMENT 'Open data: traffic density per camera, vehicle class and UTC day (cameras of the registry only).';

CREATE OR REPLACE VIEW open_data.violation_counts_daily
(
    camera_id String COMMENT 'Camera id (see cameras).',
    district String COMMENT 'District the camera stands in.',
    day Date COMMENT 'UTC day.',
    violation_type LowCardinality(String) COMMENT 'red_light, wrong_way, no_helmet, overload, illegal_parking, ...',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus or truck.',
    violations UInt64 COMMENT 'Offences detected, not counting those rejected on review.',
    confirmed UInt64 COMMENT 'Of those, confirmed by a reviewer.'
)
AS SELECT
    v.camera_id AS camera_id,
    c.district AS district,
    toDate(v.occurred_at) AS day,
    v.violation_type AS violation_type,
    v.vehicle_class AS vehicle_class,
    count() AS violations,
    countIf(v.review_status = 'confirmed') AS confirmed
FROM (SELECT camera_id, occurred_at, violation_type, vehicle_class, review_status FROM {database}.violations FINAL WHERE review_status != 'rejected') AS v
INNER JOIN (SELECT camera_id, district FROM {database}.dim_camera FINAL) AS c
    ON v.camera_id = c.camera_id
GROUP BY camera_id, district, day, violation_type, vehicle_class
COMMENT 'Open data: traffic violations counted per camera, type, vehicle class and UTC day. No individual events.';

CREATE OR REPLACE VIEW open_data.environmental_events
(
    event_id String COMMENT 'Event id.',
    camera_id String COMMENT 'Camera id (see cameras).',
    district String COMMENT 'District the camera stands in.',
    lat Float64 COMMENT 'Camera latitude, WGS84 degrees.',
    lon Float64 COMMENT 'Camera longitude, WGS84 degrees.',
    event_type LowCardinality(String) COMMENT 'fire, smoke, straw_burning, flood, ...',
    started_at DateTime64(3, 'UTC') COMMENT 'When it was first seen, UTC.',
    ended_at Nullable(DateTime64(3, 'UTC')) COMMENT 'When it was last seen; NULL while ongoing.',
    confidence Float32 COMMENT 'Detector confidence, 0..1.',
    level Nullable(Float32) COMMENT 'Magnitude where measured (e.g. flood water level).',
    level_unit LowCardinality(String) COMMENT 'Unit of level, e.g. cm.'
)
AS SELECT
    e.event_id AS event_id,
    e.camera_id AS camera_id,
    c.district AS district,
    c.lat AS lat,
    c.lon AS lon,
    e.event_type AS event_type,
    e.started_at AS started_at,
    e.ended_at AS ended_at,
    e.confidence AS confidence,
    e.level AS level,
    e.level_unit AS level_unit
FROM (SELECT event_id, camera_id, event_type, started_at, ended_at, confidence, level, level_unit FROM {database}.environmental_events FINAL) AS e
INNER JOIN (SELECT camera_id, district, lat, lon FROM {database}.dim_camera FINAL) AS c
    ON e.camera_id = c.camera_id
COMMENT 'Open data: fires, smoke, straw burning and flooding seen by city cameras.';

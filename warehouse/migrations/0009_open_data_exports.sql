-- Open data for the exports (`citycam export`, warehouse/opendata/): the facts of 0006 and
-- 0007 as published views, beside those of 0002.
--
-- - traffic_flow_hourly: line crossings per camera, line, direction, class and hour, i.e. the
--   traffic flow (what NGSI-LD TrafficFlowObserved `intensity` means), from line_crossings_1h.
-- - zone_occupancy_hourly: how full each camera zone was per hour, from zone_occupancy_1m.
-- - traffic_alerts: congestion and abnormal-flow episodes, without their evidence frames.
--
-- Same rules as 0002: views only, published columns only (no frame ids or URIs, track ids,
-- plates, model internals or emission clocks), cameras of the registry only (an INNER JOIN on
-- dim_camera), enums published as plain strings. OR REPLACE re-points open_data at the last
-- database this migration was applied to, as 0002 does.

CREATE OR REPLACE VIEW open_data.traffic_flow_hourly
(
    camera_id String COMMENT 'Camera id (see cameras).',
    camera_name String COMMENT 'Camera name.',
    district String COMMENT 'District the camera stands in.',
    road_segment Nullable(String) COMMENT 'Road segment it watches, if known.',
    lat Float64 COMMENT 'Latitude of the camera, WGS84 degrees.',
    lon Float64 COMMENT 'Longitude of the camera, WGS84 degrees.',
    line_id String COMMENT 'Counting line, unique within the camera.',
    direction String COMMENT 'Name of this way across the line, e.g. eastbound.',
    orientation String COMMENT 'positive: from the left-hand to the right-hand side of the line as drawn; negative: the other way.',
    vehicle_class LowCardinality(String) COMMENT 'car, motorbike, bicycle, bus, truck, or pedestrian.',
    hour DateTime('UTC') COMMENT 'Start of the hour, UTC.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour the camera delivered data.',
    crossings UInt64 COMMENT 'Road users of the class that crossed the line this way in the hour: the traffic flow.',
    pcu Float64 COMMENT 'Those crossings in passenger car units (pedestrians weigh 0).',
    pcu_per_hour Float64 COMMENT 'Flow rate over the minutes covered, passenger car units per hour.',
    speed_samples UInt64 COMMENT 'Crossings with a ground-speed estimate (calibrated cameras only).',
    speed_kmh_mean Nullable(Float64) COMMENT 'Mean ground speed of those crossings, km/h; empty without samples.'
)
AS SELECT
    f.camera_id AS camera_id,
    c.name AS camera_name,
    c.district AS district,
    c.road_segment AS road_segment,
    c.lat AS lat,
    c.lon AS lon,
    f.line_id AS line_id,
    f.direction AS direction,
    toString(f.orientation) AS orientation,
    f.vehicle_class AS vehicle_class,
    f.hour AS hour,
    f.minutes_covered AS minutes_covered,
    f.crossings AS crossings,
    f.pcu AS pcu,
    f.pcu_per_hour AS pcu_per_hour,
    f.speed_samples AS speed_samples,
    f.speed_kmh_mean AS speed_kmh_mean
FROM {database}.line_crossings_1h AS f
INNER JOIN (SELECT camera_id, name, district, road_segment, lat, lon FROM {database}.dim_camera FINAL) AS c
    ON f.camera_id = c.camera_id
COMMENT 'Open data: traffic flow, road users crossing a counting line per camera, line, direction, class and hour (cameras of the registry only).';

-- Hourly figures from each minute's final emission (FINAL): frame-weighted means, so the
-- figure does not depend on how many minutes were covered.
CREATE OR REPLACE VIEW open_data.zone_occupancy_hourly
(
    camera_id String COMMENT 'Camera id (see cameras).',
    camera_name String COMMENT 'Camera name.',
    district String COMMENT 'District the camera stands in.',
    lat Float64 COMMENT 'Latitude of the camera, WGS84 degrees.',
    lon Float64 COMMENT 'Longitude of the camera, WGS84 degrees.',
    zone_id String COMMENT 'Zone of the camera''s view, unique within the camera.',
    zone_kind Nullable(String) COMMENT 'junction, parking, crossing, ... if given.',
    hour DateTime('UTC') COMMENT 'Start of the hour, UTC.',
    minutes_covered UInt64 COMMENT 'Minutes of the hour the camera delivered data.',
    mean_road_users Float64 COMMENT 'Average number of road users (vehicles and pedestrians) inside the zone.',
    max_road_users UInt16 COMMENT 'Most road users inside the zone at once.',
    occupied_share Float64 COMMENT 'Share of the time the zone held at least one road user, 0..1.',
    mean_pcu Float64 COMMENT 'Average passenger car units inside the zone.'
)
AS SELECT
    z.camera_id AS camera_id,
    c.name AS camera_name,
    c.district AS district,
    c.lat AS lat,
    c.lon AS lon,
    z.zone_id AS zone_id,
    z.zone_kind AS zone_kind,
    z.hour AS hour,
    z.minutes_covered AS minutes_covered,
    z.mean_road_users AS mean_road_users,
    z.max_road_users AS max_road_users,
    z.occupied_share AS occupied_share,
    z.mean_pcu AS mean_pcu
FROM
(
    SELECT
        camera_id,
        zone_id,
        any(zone_kind) AS zone_kind,
        toStartOfHour(window_start) AS hour,
        count() AS minutes_covered,
        sum(frames) AS total_frames,
        if(total_frames = 0, 0, sum(objects) / total_frames) AS mean_road_users,
        max(max_objects) AS max_road_users,
        if(total_frames = 0, 0, sum(occupied_frames) / total_frames) AS occupied_share,
        if(total_frames = 0, 0, sum(mean_pcu * frames) / total_frames) AS mean_pcu
    FROM {database}.zone_occupancy_1m FINAL
    GROUP BY camera_id, zone_id, hour
) AS z
INNER JOIN (SELECT camera_id, name, district, lat, lon FROM {database}.dim_camera FINAL) AS c
    ON z.camera_id = c.camera_id
COMMENT 'Open data: how full each camera zone (junction, crossing, ...) was per hour (cameras of the registry only).';

CREATE OR REPLACE VIEW open_data.traffic_alerts
(
    alert_id String COMMENT 'Id of the episode: kind, camera, zone and start.',
    camera_id String COMMENT 'Camera id (see cameras).',
    district String COMMENT 'District the camera stands in.',
    lat Float64 COMMENT 'Latitude of the camera, WGS84 degrees.',
    lon Float64 COMMENT 'Longitude of the camera, WGS84 degrees.',
    kind LowCardinality(String) COMMENT 'congestion (in a zone of the camera) or abnormal_flow (over all its counting lines).',
    zone_id Nullable(String) COMMENT 'Congestion: the congested zone; empty for abnormal flow.',
    state String COMMENT 'open, ongoing or closed, as of as_of.',
    severity String COMMENT 'low, medium or high: how far past its threshold the worst minute was.',
    started_at DateTime64(3, 'UTC') COMMENT 'Start of the episode, UTC.',
    ended_at Nullable(DateTime64(3, 'UTC')) COMMENT 'End of the episode; empty while it goes on.',
    as_of DateTime64(3, 'UTC') COMMENT 'Time up to which this state accounts for the traffic.',
    metric LowCardinality(String) COMMENT 'Measure compared: mean_pcu (in the zone) or pcu_per_hour (flow).',
    value Float64 COMMENT 'The metric in the worst minute of the episode.',
    threshold Float64 COMMENT 'The value it was compared with.',
    baseline Nullable(Float64) COMMENT 'Abnormal flow: the usual flow for that hour and kind of day, passenger car units per hour.',
    z_score Nullable(Float64) COMMENT 'Abnormal flow: how many standard deviations from the usual flow.',
    deviation Nullable(String) COMMENT 'Abnormal flow: above or below the usual flow.',
    occupied_share Nullable(Float32) COMMENT 'Congestion: share of the worst minute the zone held a road user, 0..1.',
    speed_kmh Nullable(Float32) COMMENT 'Congestion: mean speed of the crossings in the worst minute, km/h, where measured.'
)
AS SELECT
    a.alert_id AS alert_id,
    a.camera_id AS camera_id,
    c.district AS district,
    c.lat AS lat,
    c.lon AS lon,
    a.kind AS kind,
    a.zone_id AS zone_id,
    toString(a.state) AS state,
    toString(a.severity) AS severity,
    a.started_at AS started_at,
    a.ended_at AS ended_at,
    a.as_of AS as_of,
    a.metric AS metric,
    a.value AS value,
    a.threshold AS threshold,
    a.baseline AS baseline,
    a.z_score AS z_score,
    CAST(a.deviation, 'Nullable(String)') AS deviation,
    a.occupied_share AS occupied_share,
    a.speed_kmh AS speed_kmh
FROM
(
    SELECT alert_id, camera_id, kind, zone_id, state, severity, started_at, ended_at, as_of,
        metric, value, threshold, baseline, z_score, deviation, occupied_share, speed_kmh
    FROM {database}.alerts FINAL
) AS a
INNER JOIN (SELECT camera_id, district, lat, lon FROM {database}.dim_camera FINAL) AS c
    ON a.camera_id = c.camera_id
COMMENT 'Open data: congestion and abnormal-flow alerts, one row per episode in its latest state. No evidence frames.';

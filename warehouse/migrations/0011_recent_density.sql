-- Queries over all cameras for a recent period ("busiest cameras in the last hour") filter
-- the per-minute density facts on window_start alone, which the sorting key (camera first)
-- cannot use: `make bench` read every granule of the month for it (~320 ms over 2.4M
-- minutes, against ~25 ms for the hourly rollups). A minmax skip index does not help: a
-- granule holds one camera and class over days. So the last two days are also kept in
-- traffic_density_1m_recent, sorted by time and partitioned by day, filled by a
-- materialized view from every insert into traffic_density_1m. Same columns (loaded_at
-- included), engine and version column (frames), so FINAL gives the same minutes; projections would not (FINAL ignores
-- them).
--
-- And detections.track_id: the inference service now gives every published box a track id.

CREATE TABLE IF NOT EXISTS {database}.traffic_density_1m_recent AS {database}.traffic_density_1m
ENGINE = ReplacingMergeTree(frames)
PARTITION BY toDate(window_start)
ORDER BY (window_start, camera_id, vehicle_class)
TTL window_start + INTERVAL 2 DAY
COMMENT 'traffic_density_1m for the last two days, sorted by time: for queries over all cameras in a recent period (use FINAL). Older minutes expire; read traffic_density_1m for them.';

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.traffic_density_1m_recent_mv
TO {database}.traffic_density_1m_recent
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
    emitted_at DateTime64(3, 'UTC') COMMENT 'When the stream emitted this version of the fact.',
    loaded_at DateTime64(3, 'UTC') COMMENT 'When the row reached the warehouse.'
)
AS SELECT * FROM {database}.traffic_density_1m
WHERE window_start >= now() - INTERVAL 2 DAY
COMMENT 'Copies every insert into traffic_density_1m of the last two days to traffic_density_1m_recent.';

INSERT INTO {database}.traffic_density_1m_recent
SELECT * FROM {database}.traffic_density_1m WHERE window_start >= now() - INTERVAL 2 DAY;

ALTER TABLE {database}.detections MODIFY COLUMN track_id COMMENT 'Tracker id of the object: unique per camera, stable across frames. Every box the inference service publishes has one (a track''s first box included); NULL only in rows from before that rule or from producers without a tracker.';

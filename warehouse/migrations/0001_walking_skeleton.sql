-- Raw detector output and per-minute traffic-density facts.
-- Re-delivery from the at-least-once pipeline is made harmless by ReplacingMergeTree keys:
-- a repeated row has the same sorting key and collapses on merge (query with FINAL for
-- exact figures before a merge has run).

CREATE TABLE IF NOT EXISTS {database}.frames
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    frame_id String COMMENT 'Deterministic frame id (camera id and capture time in ms).',
    captured_at DateTime64(3, 'UTC') COMMENT 'When the frame was captured.',
    frame_uri String COMMENT 'Where the frame JPEG lives in the frame store (may have expired).',
    width UInt16 COMMENT 'Frame width in pixels.',
    height UInt16 COMMENT 'Frame height in pixels.',
    model_name LowCardinality(String) COMMENT 'Detector that processed the frame.',
    model_version LowCardinality(String) COMMENT 'Version of that detector.',
    inferred_at DateTime64(3, 'UTC') COMMENT 'When the detector ran.',
    detections UInt16 COMMENT 'Boxes found on the frame (all classes).',
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the sink wrote the row.'
)
ENGINE = ReplacingMergeTree(inferred_at)
PARTITION BY toDate(captured_at)
ORDER BY (camera_id, captured_at, frame_id)
TTL toDateTime(captured_at) + INTERVAL 7 DAY
COMMENT 'Raw: one row per frame run through the detector, boxes or not. TTL-limited.';

CREATE TABLE IF NOT EXISTS {database}.detections
(
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    frame_id String COMMENT 'Frame the box was found on.',
    captured_at DateTime64(3, 'UTC') COMMENT 'Capture time of that frame.',
    det_index UInt16 COMMENT 'Position of the box in the frame''s detection list.',
    class_name LowCardinality(String) COMMENT 'Detector label (COCO for the default model).',
    class_id UInt16 COMMENT 'Detector label id.',
    score Float32 COMMENT 'Detector confidence, 0..1.',
    x1 Float32 COMMENT 'Box left, pixels.',
    y1 Float32 COMMENT 'Box top, pixels.',
    x2 Float32 COMMENT 'Box right, pixels.',
    y2 Float32 COMMENT 'Box bottom, pixels.',
    track_id Nullable(UInt64) COMMENT 'Tracker id, when tracking runs.',
    model_name LowCardinality(String) COMMENT 'Detector name.',
    model_version LowCardinality(String) COMMENT 'Detector version.'
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(captured_at)
ORDER BY (camera_id, captured_at, frame_id, det_index)
TTL toDateTime(captured_at) + INTERVAL 7 DAY
COMMENT 'Raw: one row per detected box. TTL-limited.';

CREATE TABLE IF NOT EXISTS {database}.traffic_density_1m
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
    emitted_at DateTime64(3, 'UTC') COMMENT 'When the stream emitted this version of the fact.'
)
ENGINE = ReplacingMergeTree(frames)
PARTITION BY toYYYYMM(window_start)
ORDER BY (camera_id, vehicle_class, window_start)
COMMENT 'Fact: traffic density per camera, vehicle class and minute. The stream re-emits a window as it fills; the version with most frames wins (use FINAL).';

CREATE TABLE IF NOT EXISTS {database}.dead_letters
(
    stage LowCardinality(String) COMMENT 'Stage that refused the message.',
    source_topic LowCardinality(String) COMMENT 'Topic the message came from.',
    source_partition UInt32 COMMENT 'Its partition.',
    source_offset UInt64 COMMENT 'Its offset.',
    reason String COMMENT 'Why it was refused.',
    value_b64 Nullable(String) COMMENT 'Original message bytes, base64.',
    failed_at DateTime64(3, 'UTC') COMMENT 'When it was refused.'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(failed_at)
ORDER BY (source_topic, source_partition, source_offset, stage)
TTL toDateTime(failed_at) + INTERVAL 90 DAY
COMMENT 'Operations: messages refused by any stage, with the reason.';

-- Traffic alerts: congestion (per camera zone) and abnormal flow (per camera) episodes, from
-- the streams job (streams/alerts_app.py, topic citycam.alerts.v1; TrafficAlert 1-0-0).
--
-- An episode is published when it opens, possibly while it goes on, and once when it closes;
-- every message carries the whole episode so far under the same alert_id. The version is
-- as_of, the end of the last minute a message accounts for (event time), not emitted_at: the
-- latest as_of is the episode's current state, so open, ongoing and closed collapse to the
-- final row, and a repeat of an earlier message (a redelivery after a worker restart, sent
-- after the close) can never win over a later one, as it would with the emission clock.
-- Identical as_of means an identical message. ORDER BY serves "this camera's alerts of a kind
-- in a time range" and ends in alert_id, the identity (camera, kind and start are part of it).
-- Read with FINAL.

CREATE TABLE IF NOT EXISTS {database}.alerts
(
    alert_id String COMMENT 'Deduplication key of the episode: kind:camera_id:zone_id (or -):started_at as YYYYMMDDTHHMMSSZ.',
    camera_id LowCardinality(String) COMMENT 'Camera registry id.',
    kind LowCardinality(String) COMMENT 'congestion (per zone) or abnormal_flow (per camera, all its counting lines).',
    zone_id Nullable(String) COMMENT 'Congestion: the camera zone that is congested; NULL for abnormal flow.',
    state Enum8('open' = 1, 'ongoing' = 2, 'closed' = 3) COMMENT 'State as of as_of: open, ongoing (still open, updated), closed (final).',
    severity Enum8('low' = 1, 'medium' = 2, 'high' = 3) COMMENT 'How far past the open threshold the worst minute was: low under 1.5x, medium under 2x, high from 2x (settings).',
    started_at DateTime64(3, 'UTC') COMMENT 'Start of the first minute of the episode (the first of the minutes that opened it).',
    ended_at Nullable(DateTime64(3, 'UTC')) COMMENT 'End of the last minute past the close threshold; NULL while the episode is open.',
    as_of DateTime64(3, 'UTC') COMMENT 'End of the last minute this version accounts for (event time); the version with the latest as_of wins.',
    metric LowCardinality(String) COMMENT 'Measure compared: mean_pcu (PCU inside the zone per frame) or pcu_per_hour (flow over all lines, smoothed).',
    value Float64 COMMENT 'The metric in the worst minute of the episode so far.',
    threshold Float64 COMMENT 'What value was compared with: the mean_pcu open threshold, or the flow at which |z| reaches the open z-score.',
    baseline Nullable(Float64) COMMENT 'Abnormal flow: the camera''s learned flow for that local hour and day type, PCU per hour; NULL for congestion.',
    baseline_std Nullable(Float64) COMMENT 'Abnormal flow: standard deviation used for z (at least the counting noise), PCU per hour.',
    z_score Nullable(Float64) COMMENT 'Abnormal flow: (value - baseline) / baseline_std in the worst minute.',
    deviation Nullable(Enum8('above' = 1, 'below' = 2)) COMMENT 'Abnormal flow: whether the flow was above or below its baseline.',
    occupied_share Nullable(Float32) COMMENT 'Congestion: share of the worst minute''s frames in which the zone held a road user, 0..1.',
    speed_kmh Nullable(Float32) COMMENT 'Congestion: mean ground speed of the camera''s line crossings in the worst minute; NULL where uncalibrated or too few crossings.',
    speed_threshold_kmh Nullable(Float32) COMMENT 'Congestion: the open threshold speed, when speed_kmh is known.',
    evidence_frame_id Nullable(String) COMMENT 'A frame from the episode: the most crowded of its worst minute that had one (frames.frame_id).',
    evidence_frame_uri Nullable(String) COMMENT 'Frame store URI of that frame (internal; frames expire from the store).',
    evidence_captured_at Nullable(DateTime64(3, 'UTC')) COMMENT 'Capture time of that frame.',
    emitted_at DateTime64(3, 'UTC') COMMENT 'When the stream published this version (wall clock; not the version column).'
)
ENGINE = ReplacingMergeTree(as_of)
PARTITION BY toYYYYMM(started_at)
ORDER BY (camera_id, kind, started_at, alert_id)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Fact: congestion and abnormal-flow alerts, one row per episode in its latest state (open, ongoing or closed; use FINAL).';

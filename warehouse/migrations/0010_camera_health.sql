-- Camera health, filled from now on: ingest reports CameraHealth 1-0-0 per camera and
-- wall-clock minute on citycam.ops.camera-health.v1, and the sink loads camera_health_1m.
-- 0002 created the table before anything filled it; the reports need two changes:
-- - covered_s: the seconds of the minute the ingest worker was running (60 but for the minutes
--   it started or stopped in). Without it a partial minute reads as a whole one; with it an
--   hour's up share is sum(up_share * covered_s) / sum(covered_s).
-- - Nullable lag: a minute in which nothing was published has no lag. 0 would read as "no
--   delay" and pull averages down; avg() skips NULL.
-- The comments of the other measures now say how ingest counts them. The table was empty
-- everywhere (nothing wrote to it), so the type change rewrites nothing.

ALTER TABLE {database}.camera_health_1m
    ADD COLUMN IF NOT EXISTS covered_s Float32 DEFAULT 60 COMMENT 'Seconds of the minute the ingest worker was running: 60, less in the minute it started or stopped in. Rates and shares refer to these seconds.' AFTER window_end;

ALTER TABLE {database}.camera_health_1m
    MODIFY COLUMN lag_ms_mean Nullable(Float32) COMMENT 'Mean delay from a published frame''s capture time to its publication, ms; NULL when nothing was published. Negative only for a file replayed faster than real time (synthetic capture times ahead of the clock).';

ALTER TABLE {database}.camera_health_1m
    MODIFY COLUMN lag_ms_max Nullable(Float32) COMMENT 'Largest such delay, ms; NULL when nothing was published.';

ALTER TABLE {database}.camera_health_1m
    COMMENT COLUMN frames_decoded 'Frames decoded from the source in the minute.',
    COMMENT COLUMN frames_published 'Sampled frames stored and published to the pipeline (FrameRefs), counted in the minute they were decoded; at most frames_decoded.',
    COMMENT COLUMN decode_errors 'Packets the decoder refused, plus frames it flagged as corrupt (error-concealed) or left without a timestamp.',
    COMMENT COLUMN reconnects 'Attempts to open the source started in the minute: the first, reconnects after a failure (failed attempts included) and replays of a looped file.',
    COMMENT COLUMN fps 'frames_published / covered_s: compare with target_fps.',
    COMMENT COLUMN up_share 'Share of the covered one-second slots of the minute in which the source delivered at least one decoded frame, 0..1; 0 for a dead camera.',
    COMMENT COLUMN emitted_at 'When ingest emitted the report; the latest wins (an ingest restarted within a minute reports it again for its own part).';

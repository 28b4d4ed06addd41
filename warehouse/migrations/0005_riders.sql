-- FrameDetections 1-1-0: rider association. A person riding a motorbike or bicycle is stored
-- with the det_index of that vehicle, and the vehicle with how many people ride it, so that
-- pedestrians are `class_name = 'person' AND rider_of IS NULL` and overloading checks can
-- read `riders`. Rows written before 1-1-0 read as riders = 0, rider_of = NULL.

ALTER TABLE {database}.detections
    ADD COLUMN IF NOT EXISTS riders UInt8 DEFAULT 0 COMMENT 'People riding this motorcycle or bicycle (0 for anything else).' AFTER track_id;

ALTER TABLE {database}.detections
    ADD COLUMN IF NOT EXISTS rider_of Nullable(UInt16) COMMENT 'For a person riding a motorcycle or bicycle: det_index of that vehicle in the same frame; NULL otherwise.' AFTER riders;

ALTER TABLE {database}.detections MODIFY COLUMN track_id COMMENT 'Tracker id of the object: unique per camera, stable across frames; NULL when the tracker has not confirmed the box.';

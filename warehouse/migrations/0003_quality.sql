-- Data quality: rows that failed their table's expectation suite (warehouse/expectations/)
-- are kept here instead of being loaded, with every expectation they failed.
-- A re-delivered message yields the same row again (same source position, same JSON): the
-- ReplacingMergeTree key makes it collapse, the latest verdict winning. The table is not
-- partitioned, so the collapse is exact (it is small: bad rows only, 90 days).

CREATE TABLE IF NOT EXISTS {database}.quarantine
(
    table_name LowCardinality(String) COMMENT 'Table the row was meant for.',
    failed_expectations Array(String) COMMENT 'Every expectation the row failed, as type(columns), e.g. expect_column_values_to_be_between(frames).',
    row_json String COMMENT 'The row as it would have been inserted, as a JSON object (column -> value, times as ISO 8601).',
    source_topic LowCardinality(String) COMMENT 'Topic of the message the row came from.',
    source_partition UInt32 COMMENT 'Its partition.',
    source_offset UInt64 COMMENT 'Its offset.',
    quarantined_at DateTime64(3, 'UTC') COMMENT 'When the quality gate refused the row.'
)
ENGINE = ReplacingMergeTree(quarantined_at)
ORDER BY (table_name, source_topic, source_partition, source_offset, cityHash64(row_json))
TTL toDateTime(quarantined_at) + INTERVAL 90 DAY
COMMENT 'Operations: rows refused by the data-quality gate, with the expectations they failed; one row per source message and row (use FINAL).';

-- Let the server drop a retried insert of the very same batch (same deduplication token):
-- see warehouse/sink.py for how this complements the ReplacingMergeTree keys.

ALTER TABLE {database}.frames MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE {database}.detections MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE {database}.traffic_density_1m MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE {database}.dead_letters MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE {database}.quarantine MODIFY SETTING non_replicated_deduplication_window = 10000;

"""citycam's shared plumbing: settings, CLI, Kafka/ClickHouse clients, embedded services."""

__version__ = "0.1.0"

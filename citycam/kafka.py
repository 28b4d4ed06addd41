"""Kafka client plumbing on confluent-kafka: topics, a delivery-checked producer, dead letters."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from citycam.config import KafkaSettings
from schemas import DEAD_LETTERS_TOPIC, DeadLetter, Event, TopicSpec

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a produced message."""


def ensure_topics(
    settings: KafkaSettings, topics: Iterable[TopicSpec], timeout_s: float = 30
) -> list[str]:
    """Create missing topics with their registry partitions and retention; return those created.

    Existing topics are left alone, but a partition count that differs from the registry is
    logged: keyed ordering per camera depends on it and not every broker can add partitions.
    """
    admin = AdminClient(settings.client_config())
    wanted = {t.name: t for t in topics}
    existing = admin.list_topics(timeout=timeout_s).topics
    for name, spec in wanted.items():
        partitions = spec.partitions or settings.partitions
        if name in existing and len(existing[name].partitions) != partitions:
            log.warning(
                "topic %s has %d partitions, registry wants %d",
                name,
                len(existing[name].partitions),
                partitions,
            )
    missing = [
        NewTopic(
            name,
            num_partitions=spec.partitions or settings.partitions,
            replication_factor=settings.replication_factor,
            config=spec.config(),
        )
        for name, spec in wanted.items()
        if name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, request_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """At-least-once consumer: offsets are committed explicitly after the work is durable."""
    return {
        **settings.client_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_s * 1000,
        "heartbeat.interval.ms": max(500, settings.session_timeout_s * 1000 // 6),
        **overrides,
    }


class EventProducer:
    """Idempotent keyed producer; `flush()` raises if any message since the last flush failed."""

    def __init__(self, settings: KafkaSettings, client_id: str, **overrides: Any) -> None:
        self._producer = Producer(
            {
                **settings.client_config(),
                "client.id": client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
                **overrides,
            }
        )
        self._failures: list[str] = []
        self._lock = threading.Lock()

    def publish(
        self,
        topic: TopicSpec,
        key: str,
        event: Event,
        timestamp_ms: int | None = None,
        partition: int | None = None,
    ) -> None:
        self.send(
            topic.name,
            key.encode(),
            event.to_bytes(),
            timestamp_ms,
            headers={"citycam-schema": event.schema_url()},
            partition=partition,
        )

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int | None = None,
        headers: dict[str, str] | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one message; its partition is the key's hash unless `partition` names one."""
        kwargs: dict[str, Any] = {"on_delivery": self._on_delivery, "headers": headers or {}}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, **kwargs)
                break
            except BufferError:  # local queue full: let the broker catch up, then retry
                self._producer.poll(0.5)
        self._producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            with self._lock:
                self._failures.append(f"{msg.topic()}: {err.str()}")

    def flush(self, timeout_s: float = 60) -> None:
        remaining = self._producer.flush(timeout_s)
        with self._lock:
            failures, self._failures = self._failures, []
        if remaining:
            raise DeliveryError(f"{remaining} messages still unacknowledged after {timeout_s}s")
        if failures:
            raise DeliveryError(f"{len(failures)} messages failed: {failures[0]}")

    def poll(self, timeout_s: float = 0) -> None:
        self._producer.poll(timeout_s)


class DeadLetterQueue:
    """Sends refused messages, with the reason and original bytes, to the dead-letter topic."""

    def __init__(self, producer: EventProducer, stage: str) -> None:
        self._producer = producer
        self._stage = stage

    def send(self, msg: Message, reason: str) -> None:
        key = msg.key()
        source = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
        letter = DeadLetter.about(self._stage, source, key, msg.value(), reason)
        log.warning(
            "dead-lettered %s[%s]@%s: %s", msg.topic(), msg.partition(), msg.offset(), reason
        )
        self._producer.publish(DEAD_LETTERS_TOPIC, (key or b"").decode(errors="replace"), letter)


def is_data(message: Message) -> bool:
    """True for a record; a consume error is logged (reaching a partition's end is not one)."""
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        log.error("consume error: %s", error)
    return False


def commit_processed(consumer: Consumer, messages: Sequence[Message]) -> None:
    """Synchronously commit, per partition, the offset after the last processed message."""
    latest: dict[tuple[str, int], int] = {}
    for m in messages:
        if m.error() is None:
            key = (m.topic() or "", m.partition() or 0)
            latest[key] = max(latest.get(key, -1), m.offset() or 0)
    if latest:
        consumer.commit(
            offsets=[TopicPartition(t, p, o + 1) for (t, p), o in latest.items()],
            asynchronous=False,
        )

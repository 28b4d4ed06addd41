"""The producer plumbing against the real embedded broker: where messages land."""

from __future__ import annotations

import dataclasses

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from citycam.config import KafkaSettings
from citycam.kafka import EventProducer, consumer_config, ensure_topics
from schemas import DETECTIONS_TOPIC, FrameDetections, TopicSpec

pytestmark = pytest.mark.integration

TOPIC = dataclasses.replace(DETECTIONS_TOPIC, name="test.kafka.placement.v1", partitions=3)


def frame(camera_id: str, n: int) -> FrameDetections:
    return FrameDetections.model_validate(
        {
            "camera_id": camera_id,
            "frame_id": f"{camera_id}-{n}",
            "captured_at": "2026-11-23T08:00:00Z",
            "frame_uri": f"file:///frames/{camera_id}/{n}.jpg",
            "width": 640,
            "height": 480,
            "model_name": "test",
            "model_version": "1",
            "inferred_at": "2026-11-23T08:00:01Z",
            "detections": [],
        }
    )


def partitions_of(kafka: KafkaSettings, topic: TopicSpec, expected: int) -> dict[str, list[int]]:
    """The partition of each copy of each frame id, read back by assignment (no group to
    join)."""
    consumer = Consumer(consumer_config(kafka, "test-placement"))
    consumer.assign([TopicPartition(topic.name, p, OFFSET_BEGINNING) for p in range(3)])
    found: dict[str, list[int]] = {}
    try:
        for _ in range(40):
            for message in consumer.consume(100, 0.5):
                if message.error() is None:
                    event = FrameDetections.from_bytes(message.value())
                    found.setdefault(event.frame_id, []).append(message.partition() or 0)
            if len(found) >= expected:
                break
    finally:
        consumer.close()
    return found


def test_a_named_partition_wins_over_the_keys_hash(broker: KafkaSettings) -> None:
    ensure_topics(broker, [TOPIC])
    producer = EventProducer(broker, client_id="test-placement")
    for n in range(6):  # one camera's key, dealt over all three partitions
        producer.publish(TOPIC, "cam-a", frame("cam-a", n), partition=n % 3)
    for n in range(6):  # by key: one partition for all of them
        producer.publish(TOPIC, "cam-b", frame("cam-b", n))
    producer.flush()

    found = partitions_of(broker, TOPIC, expected=12)
    assert {f"cam-a-{n}": found[f"cam-a-{n}"] for n in range(6)} == {
        f"cam-a-{n}": [n % 3] for n in range(6)
    }
    by_key = [found[f"cam-b-{n}"] for n in range(6)]
    assert all(len(p) == 1 for p in by_key) and len({p[0] for p in by_key}) == 1

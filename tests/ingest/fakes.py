"""Test doubles for the ingest worker's producer and frame store (unit tests only)."""

from __future__ import annotations


class RecordingProducer:
    def __init__(self) -> None:
        self.events: list[object] = []

    def publish(
        self, topic: object, key: str, event: object, timestamp_ms: int | None = None
    ) -> None:
        self.events.append(event)

    def flush(self, timeout_s: float = 60) -> None:
        pass


class MemoryStore:
    def put(self, camera_id: str, frame_id: str, jpeg: bytes) -> str:
        return f"file:///mem/{frame_id}.jpg"

    def get(self, uri: str) -> bytes:
        raise NotImplementedError

    def prune(self, max_age_s: float, max_bytes: int) -> int:
        return 0

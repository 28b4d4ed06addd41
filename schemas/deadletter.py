"""DeadLetter: a message a stage could not process, kept with its reason and original bytes."""

from __future__ import annotations

import base64
from typing import ClassVar

from pydantic import Field

from schemas._base import Event, UtcDatetime, schema_version_field, utc_now

MAX_REASON = 4000  # a reason is for people; a whole traceback would bloat every letter


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


class DeadLetter(Event):
    SCHEMA_NAME: ClassVar[str] = "dead_letter"
    SCHEMA_VERSION: ClassVar[str] = "1-0-0"
    schema_version: str = schema_version_field(SCHEMA_VERSION)

    stage: str = Field(min_length=1, description="Stage that refused it: inference, streams, sink.")
    source_topic: str
    source_partition: int = Field(ge=0)
    source_offset: int = Field(ge=0)
    reason: str = Field(min_length=1)
    key_b64: str | None = Field(default=None, description="Original key, base64.")
    value_b64: str | None = Field(default=None, description="Original value bytes, base64.")
    failed_at: UtcDatetime

    @classmethod
    def about(
        cls,
        stage: str,
        source: tuple[str, int, int],
        key: bytes | None,
        value: bytes | None,
        reason: str,
    ) -> DeadLetter:
        """The letter for a refused message at `source` = (topic, partition, offset)."""
        topic, partition, offset = source
        return cls(
            stage=stage,
            source_topic=topic,
            source_partition=max(partition, 0),
            source_offset=max(offset, 0),
            reason=reason[:MAX_REASON],
            key_b64=_b64(key),
            value_b64=_b64(value),
            failed_at=utc_now(),
        )

    def original_value(self) -> bytes | None:
        return None if self.value_b64 is None else base64.b64decode(self.value_b64)

    def original_key(self) -> bytes | None:
        return None if self.key_b64 is None else base64.b64decode(self.key_b64)

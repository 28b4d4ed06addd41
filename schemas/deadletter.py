"""DeadLetter: a message a stage could not process, kept with its reason and original bytes."""

from __future__ import annotations

import base64
from typing import ClassVar

from pydantic import Field

from schemas._base import Event, UtcDatetime, schema_version_field


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

    def original_value(self) -> bytes | None:
        return None if self.value_b64 is None else base64.b64decode(self.value_b64)

    def original_key(self) -> bytes | None:
        return None if self.key_b64 is None else base64.b64decode(self.key_b64)

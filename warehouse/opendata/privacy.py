"""The personal-data check every export passes before it is published.

The open_data views already leave personal and internal fields out; this is the second lock,
independent of them: a view changed by mistake (a column added, a frame URI copied into a
text field) fails the export instead of publishing it. It refuses

- columns whose name says frame, track, plate, face, evidence, person or licence number;
- text values that look like a frame reference: a storage URI (file://, s3://, ...) or an
  image file name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FORBIDDEN_COLUMN = re.compile(
    r"frame|track|plate|face|evidence|person|licen[cs]e_?(number|no)|image|snapshot",
    re.IGNORECASE,
)
FRAME_REFERENCE = re.compile(
    r"\b(?:file|s3|s3a|gs|gcs|az|abfss?|memory|hdfs)://|\.(?:jpe?g|png|webp|bmp)\b",
    re.IGNORECASE,
)
_SAMPLES = 3  # offending values named in a failure


@dataclass(frozen=True)
class PersonalDataFinding:
    dataset: str
    check: str  # forbidden_column or frame_reference
    detail: str


def scan_columns(dataset: str, columns: Iterable[str]) -> list[PersonalDataFinding]:
    return [
        PersonalDataFinding(dataset, "forbidden_column", f"column {name!r} may hold personal data")
        for name in columns
        if FORBIDDEN_COLUMN.search(name)
    ]


def scan_values(dataset: str, columns: Mapping[str, Iterable[Any]]) -> list[PersonalDataFinding]:
    """Text values that look like frame references, per column (`columns`: name -> values)."""
    findings = []
    for name, values in columns.items():
        hits = [v for v in values if isinstance(v, str) and FRAME_REFERENCE.search(v)]
        if hits:
            sample = ", ".join(repr(v) for v in hits[:_SAMPLES])
            findings.append(
                PersonalDataFinding(
                    dataset,
                    "frame_reference",
                    f"column {name!r}: {len(hits)} value(s) look like frame references: {sample}",
                )
            )
    return findings


def scan_text(dataset: str, text: str) -> list[PersonalDataFinding]:
    """A written file's text: nothing in it may look like a frame reference."""
    hits = FRAME_REFERENCE.findall(text)
    if not hits:
        return []
    sample = ", ".join(repr(h) for h in hits[:_SAMPLES])
    return [PersonalDataFinding(dataset, "frame_reference", f"file text contains {sample}")]

"""The camera registry: a YAML list of cameras, validated at load with clear errors."""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Self
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas._base import CAMERA_ID_PATTERN

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "srt", "udp")


class CameraConfigError(ValueError):
    """The registry file is unreadable or invalid; the message names file and field."""


class Camera(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=CAMERA_ID_PATTERN)
    name: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    district: str = Field(min_length=1)
    source: str = Field(min_length=1, description="rtsp://... URL, or a video file path.")
    sample_fps: float = Field(gt=0, le=60, description="Frames per second to sample.")
    enabled: bool = True
    loop: bool = Field(default=False, description="Replay a file forever (simulated live feed).")
    realtime: bool = Field(default=False, description="Pace a file at its native speed.")
    road_segment: str | None = None
    road_class: str | None = None

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        scheme = urlparse(source).scheme
        if (
            scheme
            and scheme not in (*STREAM_SCHEMES, "file")
            and not re.fullmatch(r"[a-zA-Z]", scheme)
        ):
            raise ValueError(
                f"unsupported source scheme {scheme!r}; use {', '.join(STREAM_SCHEMES)} or a file"
            )
        return source

    @property
    def is_stream(self) -> bool:
        return urlparse(self.source).scheme in STREAM_SCHEMES

    @property
    def source_path(self) -> Path | None:
        """The local file of a file source, None for network streams."""
        if self.is_stream:
            return None
        parsed = urlparse(self.source)
        return Path(parsed.path) if parsed.scheme == "file" else Path(self.source)


class CameraRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: tuple[Camera, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        duplicates = [cid for cid, n in Counter(c.id for c in self.cameras).items() if n > 1]
        if duplicates:
            raise ValueError(f"duplicate camera ids: {', '.join(sorted(duplicates))}")
        return self

    @property
    def enabled(self) -> tuple[Camera, ...]:
        return tuple(c for c in self.cameras if c.enabled)

    def get(self, camera_id: str) -> Camera:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(f"no camera {camera_id!r} in the registry")


def load_cameras(path: Path) -> CameraRegistry:
    """Read and validate a registry; ${VARS} in sources are expanded from the environment."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CameraConfigError(f"{path}: cannot read camera registry: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CameraConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CameraConfigError(f"{path}: expected a mapping with a 'cameras' list")
    for camera in raw.get("cameras") or []:
        if isinstance(camera, dict) and isinstance(camera.get("source"), str):
            camera["source"] = _expand(camera["source"], path)
    try:
        return CameraRegistry.model_validate(raw)
    except ValidationError as exc:
        raise CameraConfigError(_describe(path, raw, exc)) from exc


def _expand(source: str, path: Path) -> str:
    expanded = os.path.expandvars(source)
    if "${" in expanded or re.search(r"\$[A-Z_]+", expanded):
        raise CameraConfigError(f"{path}: source {source!r} uses an unset environment variable")
    return expanded


def _describe(path: Path, raw: dict, exc: ValidationError) -> str:
    lines = [f"{path}: invalid camera registry:"]
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            with contextlib.suppress(AttributeError, IndexError, KeyError, TypeError):
                where = f"camera {raw['cameras'][loc[1]].get('id', loc[1])!r}: " + ".".join(
                    str(p) for p in loc[2:]
                )
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)

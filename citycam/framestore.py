"""Frame store: JPEG frames addressed by URI, chosen by scheme (file:// today, room for s3://).

Ingest writes, inference reads by the URI carried in a FrameRef. Retention runs in the writer
(`prune`): frames older than the retention or beyond the size cap are deleted oldest first,
so the store cannot grow without bound.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse


class FrameStoreError(RuntimeError):
    """A frame cannot be stored or read; the message says which URI and why."""


class FrameStore(Protocol):
    def put(self, camera_id: str, frame_id: str, jpeg: bytes) -> str: ...
    def get(self, uri: str) -> bytes: ...
    def prune(self, max_age_s: float, max_bytes: int) -> int: ...


@dataclass
class LocalFrameStore:
    """Frames as files under root/<camera>/<yyyymmddhh>/<frame_id>.jpg (written atomically)."""

    root: Path

    def put(self, camera_id: str, frame_id: str, jpeg: bytes) -> str:
        folder = self.root / camera_id / time.strftime("%Y%m%d%H", time.gmtime())
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{frame_id}.jpg"
        tmp = path.with_suffix(".jpg.tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, path)  # readers never see a half-written frame
        return path.resolve().as_uri()

    def get(self, uri: str) -> bytes:
        path = _file_path(uri)
        if not path.is_relative_to(self.root.resolve()):
            raise FrameStoreError(f"{uri} lies outside the frame store {self.root}")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FrameStoreError(f"{uri}: frame not found (expired by retention?)") from None

    def prune(self, max_age_s: float, max_bytes: int) -> int:
        """Delete expired frames, then the oldest beyond max_bytes; return how many went."""
        if not self.root.exists():
            return 0
        frames = sorted(
            ((p.stat().st_mtime, p.stat().st_size, p) for p in self.root.rglob("*.jpg")),
            key=lambda item: item[0],
        )
        cutoff = time.time() - max_age_s
        total = sum(size for _, size, _ in frames)
        removed = 0
        for mtime, size, path in frames:
            if mtime >= cutoff and total <= max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        _remove_empty_dirs(self.root)
        return removed


def _remove_empty_dirs(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def _file_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise FrameStoreError(f"{uri}: not a file:// URI")
    return Path(unquote(parsed.path))


def _local(uri: str) -> FrameStore:
    return LocalFrameStore(_file_path(uri))


def _s3(uri: str) -> FrameStore:
    raise FrameStoreError(
        f"{uri}: the s3:// frame store is not implemented yet; use a file:// URI "
        "(e.g. a shared volume) for now"
    )


_DRIVERS: dict[str, Callable[[str], FrameStore]] = {"file": _local, "s3": _s3}


def open_frame_store(uri: str) -> FrameStore:
    scheme = urlparse(uri).scheme
    if scheme not in _DRIVERS:
        raise FrameStoreError(f"{uri}: unknown frame store scheme; known: {', '.join(_DRIVERS)}")
    return _DRIVERS[scheme](uri)

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from citycam.framestore import FrameStoreError, LocalFrameStore, open_frame_store


def test_put_then_get_by_uri(tmp_path: Path) -> None:
    store = open_frame_store(tmp_path.as_uri())
    uri = store.put("cam-a", "cam-a-1", b"jpeg-bytes")
    assert uri.startswith("file://")
    assert store.get(uri) == b"jpeg-bytes"


def test_missing_frame_and_foreign_paths_are_clear_errors(tmp_path: Path) -> None:
    store = LocalFrameStore(tmp_path / "frames")
    with pytest.raises(FrameStoreError, match="not found"):
        store.get((tmp_path / "frames" / "x.jpg").as_uri())
    with pytest.raises(FrameStoreError, match="outside the frame store"):
        store.get("file:///etc/passwd")
    with pytest.raises(FrameStoreError, match="not a file:// URI"):
        store.get("s3://bucket/x.jpg")


def test_unknown_and_unimplemented_schemes() -> None:
    with pytest.raises(FrameStoreError, match="unknown frame store scheme"):
        open_frame_store("ftp://host/frames")
    with pytest.raises(FrameStoreError, match="s3:// frame store is not implemented"):
        open_frame_store("s3://bucket/frames")


def test_prune_removes_expired_frames(tmp_path: Path) -> None:
    store = LocalFrameStore(tmp_path)
    old = store.put("cam", "old", b"x" * 10)
    new = store.put("cam", "new", b"y" * 10)
    hour_ago = time.time() - 3600
    os.utime(Path(old.removeprefix("file://")), (hour_ago, hour_ago))
    assert store.prune(max_age_s=600, max_bytes=10**9) == 1
    assert store.get(new) == b"y" * 10
    with pytest.raises(FrameStoreError):
        store.get(old)


def test_prune_caps_total_size_oldest_first(tmp_path: Path) -> None:
    store = LocalFrameStore(tmp_path)
    uris = []
    for i in range(5):
        uris.append(store.put("cam", f"f{i}", b"z" * 100))
        stamp = time.time() - 100 + i
        os.utime(Path(uris[-1].removeprefix("file://")), (stamp, stamp))
    assert store.prune(max_age_s=3600, max_bytes=250) == 3
    assert [store.get(u) for u in uris[3:]] == [b"z" * 100] * 2

"""Fixtures for the inference tests: real footage frames and one thread for torch."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """The machines are shared: one thread keeps tests polite (and often faster)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def footage_dir() -> Path:
    return Path(os.environ.get("CITYCAM_FOOTAGE_DIR", REPO_ROOT / ".data" / "footage"))


@pytest.fixture(scope="session")
def footage_frames(footage_dir: Path) -> Callable[[str, Sequence[int]], list[np.ndarray]]:
    """``footage_frames(name, indices)``: those frames of a clip as HxWx3 uint8 RGB.

    Skips the test when the clip is missing (``make test`` fetches it).
    """
    cache: dict[tuple[str, tuple[int, ...]], list[np.ndarray]] = {}

    def read(name: str, indices: Sequence[int]) -> list[np.ndarray]:
        path = footage_dir / name
        if not path.is_file():
            pytest.skip(
                f"footage {path} is missing: run `make test` (it fetches the clips) "
                "or point CITYCAM_FOOTAGE_DIR at a folder holding it"
            )
        key = (name, tuple(indices))
        if key not in cache:
            cache[key] = _decode_frames(path, indices)
        return [frame.copy() for frame in cache[key]]

    return read


def _decode_frames(path: Path, indices: Sequence[int]) -> list[np.ndarray]:
    wanted = set(indices)
    frames: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[index] = frame.to_ndarray(format="rgb24")
            if index >= max(wanted):
                break
    missing = wanted - frames.keys()
    if missing:
        raise ValueError(f"{path} has no frames {sorted(missing)}")
    return [frames[i] for i in indices]

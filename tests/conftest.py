"""Shared fixtures: real footage, and the real embedded broker on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from citycam.config import KafkaSettings

REPO = Path(__file__).parents[1]


@pytest.fixture(scope="session")
def footage_dir() -> Path:
    folder = Path(os.environ.get("CITYCAM_FOOTAGE_DIR", REPO / ".data" / "footage"))
    if not (folder / "vtest.avi").exists() or not (folder / "bikes.mp4").exists():
        pytest.skip(f"demo footage missing in {folder}; `make footage` fetches it")
    return folder


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaSettings]:
    """A real tansu broker (memory storage) for the whole session; topics are per test."""
    from citycam.embedded import start_broker

    process, bootstrap = start_broker(tmp_path_factory.mktemp("broker"))
    try:
        yield KafkaSettings(bootstrap_servers=bootstrap, partitions=2)
    finally:
        process.stop()

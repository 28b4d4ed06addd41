"""Shared fixtures: real footage, and the real embedded broker on a free loopback port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# Modules on the integration pipeline (the package fixture `pipeline`): under xdist they share
# a worker, so the pipeline runs once. tests/integration/test_grouping.py keeps this complete.
ON_PIPELINE = frozenset(
    {
        "tests/integration/test_pipeline.py",
        "tests/integration/test_dashboards.py",
        "tests/integration/test_open_data_export.py",
    }
)


def module_of(nodeid: str) -> str:
    """The test module's path in a pytest node id."""
    return nodeid.split("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The pipeline's modules first: together they are the longest unit of work (minutes), so
    under xdist they start at once while the other worker takes everything else."""
    items.sort(key=lambda item: module_of(item.nodeid) not in ON_PIPELINE)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs two pytest-xdist workers: much of the suite waits on services starting,
    consumer groups joining, subprocesses. Each module goes to one worker whole, so its module
    fixtures (a broker, a detector's run over footage) start once, and the modules on the
    pipeline go together. (`--dist loadgroup` would do this with marks, but xdist 3.8 cannot
    rename pytest 9's node ids.) Modules are handed out in collection order, not xdist's
    most-tests-first, so the pipeline's go first."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = module_of(nodeid)
            return "integration-pipeline" if module in ON_PIPELINE else module

    return ModuleScheduling(config, log)

"""The pipeline run shared by the integration tests (one run for the whole package)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pipeline import Pipeline, run_pipeline


@pytest.fixture(scope="package")
def pipeline(footage_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with run_pipeline(footage_dir, tmp_path_factory.mktemp("pipeline")) as running:
        yield running

"""The test suite's own grouping for parallel runs stays complete (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import ON_PIPELINE, module_of


def test_every_module_on_the_pipeline_is_grouped_with_the_others(
    request: pytest.FixtureRequest,
) -> None:
    on_pipeline = {
        module_of(item.nodeid)
        for item in request.session.items
        if "pipeline" in getattr(item, "fixturenames", ())
    }
    if not on_pipeline:
        pytest.skip("run without the pipeline's tests")
    assert on_pipeline <= ON_PIPELINE, "add the new module to tests.conftest.ON_PIPELINE"

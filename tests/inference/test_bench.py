"""The inference benchmark runs on real footage and reports every stage (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference import bench

pytestmark = pytest.mark.integration


def test_benchmark_reports_each_stage_and_its_baselines(tmp_path: Path) -> None:
    out = tmp_path / "inference.json"
    assert (
        bench.main(["--camera", "hue-tran-hung-dao-02", "--device", "cpu", "--out", str(out)]) == 0
    )
    [run] = json.loads(out.read_text())["runs"]
    assert run["frames_sampled"] == 50 and run["frames_decoded"] == 250  # 10 s at 5 of 25 fps
    assert set(run["share"]) == {"decode", "detect", "track", "count"}
    assert sum(run["share"].values()) == pytest.approx(1, abs=0.01)
    assert run["boxes"] > 0 and run["track_and_count_over_detect"] > 0
    assert run["baselines"]["detect_over_raw_forward"] > 0

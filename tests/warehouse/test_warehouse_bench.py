"""The warehouse benchmark's sink part runs end to end with several sink processes in one
consumer group, and checks what they stored (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warehouse import bench

pytestmark = pytest.mark.integration


def test_sink_benchmark_with_two_sink_processes_reports_both(tmp_path: Path) -> None:
    out = tmp_path / "warehouse.json"
    args = ["--only", "sink", "--frames", "400", "--sinks", "2", "--out", str(out)]
    assert bench.main(args) == 0  # it raises if the warehouse holds other rows than published
    sink = json.loads(out.read_text())["sink"]
    assert sink["sink_processes"] == 2 and sink["topic_partitions"] == 4
    assert sink["messages"] > 400 and sink["rows"] > sink["messages"]
    assert {"sink-0", "validation-0", "sink-1", "validation-1"} <= set(sink["sink_cpu_s"])
    # the group shared the partitions out, two each, and the bench had dealt the cameras
    # out evenly over them: both processes stored about half the messages, none twice
    shares = sink["messages_per_sink_process"]
    assert len(shares) == 2 and sum(shares) == sink["messages"]
    assert min(shares) > 0.4 * sink["messages"]
    assert sink["sink_over_direct"] > 0 and sink["sink_stage_s"]["insert"] > 0

"""The hand-labelled crossing files stay consistent with themselves and the demo cameras."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from citycam.cameras import CountingLine, load_cameras

HERE = Path(__file__).parent
DEMO_REGISTRY = Path(__file__).parents[2] / "citycam" / "demo" / "cameras.yaml"
CLASSES = {"car", "bicycle", "motorcycle", "person", "bus", "truck"}
FILES = sorted(HERE.glob("*_crossings.yaml"))


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def totals(crossings: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts = Counter((c["direction"], c["class"]) for c in crossings)
    out: dict[str, dict[str, int]] = {}
    for (direction, cls), n in sorted(counts.items()):
        out.setdefault(direction, {})[cls] = n
    return out


def test_both_clips_are_labelled() -> None:
    assert [p.name for p in FILES] == ["bikes_crossings.yaml", "vtest_crossings.yaml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_line_is_the_demo_cameras_line(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYCAM_FOOTAGE_DIR", "/srv/footage")
    truth = load(path)
    camera = load_cameras(DEMO_REGISTRY).get(truth["camera_id"])
    assert camera.geometry is not None
    assert camera.source.endswith("/" + truth["clip"])
    assert list(camera.geometry.frame_size) == truth["frame_size"]
    assert camera.geometry.line(truth["line"]["id"]) == CountingLine.model_validate(truth["line"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_crossings_are_well_formed(path: Path) -> None:
    truth = load(path)
    directions = set(truth["line"]["directions"].values())
    windows = truth["evaluation_windows_s"]
    crossings = truth["crossings"]
    assert crossings, "a ground truth without crossings measures nothing"
    times = [c["t"] for c in crossings]
    assert times == sorted(times)
    for c in crossings:
        assert c["direction"] in directions and c["class"] in CLASSES
        assert any(start <= c["t"] <= end for start, end in windows)
        assert 0 <= c["t"] <= truth["duration_s"]
        assert abs(c["frame"] - c["t"] * truth["fps"]) <= 1
    assert totals(crossings) == {d: n for d, n in truth["totals"].items() if n}


def test_vtest_first_40_seconds() -> None:
    truth = load(HERE / "vtest_crossings.yaml")
    first = [c for c in truth["crossings"] if c["t"] <= 40]
    assert totals(first) == truth["totals_first_40s"]

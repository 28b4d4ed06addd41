"""`citycam cameras draw` on the real demo footage."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import yaml

from citycam.cli import main

DEMO_REGISTRY = Path(__file__).parents[2] / "citycam" / "demo" / "cameras.yaml"
BIKES = "hue-tran-hung-dao-02"


@pytest.fixture
def footage(footage_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CITYCAM_FOOTAGE_DIR", str(footage_dir))
    return footage_dir


def raw_frame(path: Path, at_s: float) -> np.ndarray:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at_s:
                return frame.to_ndarray(format="bgr24")
    raise AssertionError("clip too short")


def draw(*args: str) -> int:
    return main(["cameras", "draw", *args])


def test_draws_the_demo_geometry_on_the_requested_frame(footage: Path, tmp_path: Path) -> None:
    out = tmp_path / "bikes.png"
    assert draw(BIKES, "--out", str(out), "--at", "6", "--registry", str(DEMO_REGISTRY)) == 0
    drawn = cv2.imread(str(out))
    raw = raw_frame(footage / "bikes.mp4", 6.0)
    assert drawn is not None and drawn.shape == raw.shape == (272, 640, 3)
    # the counting line x = 400, y 120-250 is painted over
    line = np.abs(drawn[130:240, 399:402].astype(int) - raw[130:240, 399:402]).mean()
    assert line > 40
    # far from every shape it is the very same frame (PNG is lossless)
    assert np.array_equal(drawn[:60, :150], raw[:60, :150])


def test_scales_geometry_and_draws_a_calibration(footage: Path, tmp_path: Path) -> None:
    registry = yaml.safe_load(DEMO_REGISTRY.read_text())
    camera = next(c for c in registry["cameras"] if c["id"] == BIKES)
    camera["geometry"] = {
        "frame_size": [320, 136],  # half size: the drawing scales it to 640x272
        "lines": [
            {
                "id": "half",
                "points": [[100, 125], [100, 60]],
                "directions": {"positive": "east", "negative": "west"},
            }
        ],
        "homography": {
            "image_points": [[20, 130], [300, 130], [250, 70], [70, 70]],
            "ground_points": [[0, 0], [14, 0], [14, 30], [0, 30]],
        },
    }
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(registry))
    out = tmp_path / "nested" / "half.png"
    assert draw(BIKES, "--out", str(out), "--at", "6", "--registry", str(path)) == 0
    drawn = cv2.imread(str(out))
    assert drawn is not None
    raw = raw_frame(footage / "bikes.mp4", 6.0)
    assert np.abs(drawn[130:240, 199:202].astype(int) - raw[130:240, 199:202]).mean() > 40
    magenta = (drawn[:, :, 0] > 200) & (drawn[:, :, 1] < 60) & (drawn[:, :, 2] > 200)
    assert magenta.sum() > 50  # calibration markers and grid points


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no camera 'nope' (known: hue-le-loi-01, "),
        ([BIKES, "--at", "60"], "ended before 60 s"),
        ([BIKES, "--at", "-1"], "--at must be >= 0"),
    ],
)
def test_clear_errors(
    footage: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "x.png"
    assert draw(*args, "--out", str(out), "--registry", str(DEMO_REGISTRY)) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def write_registry(tmp_path: Path, source: str, geometry: bool) -> Path:
    camera = {
        "id": "cam",
        "name": "n",
        "lat": 0,
        "lon": 0,
        "district": "d",
        "source": source,
        "sample_fps": 1,
    }
    if geometry:
        camera["geometry"] = {
            "frame_size": [640, 480],
            "zones": [{"id": "z", "polygon": [[0, 0], [9, 0], [9, 9]]}],
        }
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump({"cameras": [camera]}))
    return path


def test_camera_without_geometry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = write_registry(tmp_path, "/nowhere.mp4", geometry=False)
    assert draw("cam", "--out", str(tmp_path / "x.png"), "--registry", str(registry)) == 1
    assert "camera 'cam' has no geometry to draw" in capsys.readouterr().err


def test_dead_network_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = write_registry(tmp_path, "rtsp://127.0.0.1:9/none", geometry=True)
    assert draw("cam", "--out", str(tmp_path / "x.png"), "--registry", str(registry)) == 1
    assert "cam: cannot open rtsp://127.0.0.1:9/none" in capsys.readouterr().err


def test_listing_a_registry_file_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = write_registry(tmp_path, "/nowhere.mp4", geometry=True)
    assert main(["cameras", str(registry)]) == 0
    assert "cam " in capsys.readouterr().out
    assert main(["cameras", str(registry), "extra"]) == 1
    assert "unexpected arguments 'extra'" in capsys.readouterr().err

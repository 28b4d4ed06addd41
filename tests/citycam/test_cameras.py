from __future__ import annotations

from pathlib import Path

import pytest

from citycam.cameras import CameraConfigError, load_cameras

VALID = """
cameras:
  - id: cam-a
    name: Gate A
    lat: 16.46
    lon: 107.59
    district: Phu Hoi
    source: rtsp://10.0.0.5/stream1
    sample_fps: 2
  - id: cam-b
    name: File camera
    lat: 16.47
    lon: 107.58
    district: Phu Hoa
    source: ${FOOTAGE}/clip.mp4
    sample_fps: 5
    enabled: false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(text)
    return path


def test_valid_registry_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOOTAGE", "/srv/footage")
    registry = load_cameras(write(tmp_path, VALID))
    assert [c.id for c in registry.cameras] == ["cam-a", "cam-b"]
    assert [c.id for c in registry.enabled] == ["cam-a"]
    assert registry.get("cam-a").is_stream
    assert registry.get("cam-b").source_path == Path("/srv/footage/clip.mp4")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("lat: 16.46", "lat: 95"),
            "camera 'cam-a': lat: Input should be less than or equal to 90",
        ),
        (
            ("sample_fps: 2", "sample_fps: 0"),
            "camera 'cam-a': sample_fps: Input should be greater than 0",
        ),
        (("id: cam-b", "id: cam-a"), "duplicate camera ids: cam-a"),
        (("id: cam-a", "id: Cam A"), "id: String should match pattern"),
        (("source: rtsp://", "source: ftp://"), "unsupported source scheme 'ftp'"),
        (
            ("district: Phu Hoi", "district: Phu Hoi\n    colour: red"),
            "colour: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_registry_names_camera_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: tuple[str, str], message: str
) -> None:
    monkeypatch.setenv("FOOTAGE", "/srv")
    path = write(tmp_path, VALID.replace(*change, 1))
    with pytest.raises(CameraConfigError) as info:
        load_cameras(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_unset_variable_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOOTAGE", raising=False)
    with pytest.raises(CameraConfigError, match="unset environment variable"):
        load_cameras(write(tmp_path, VALID))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cameras: [", "not valid YAML"),
        ("- just a list", "expected a mapping"),
        ("cameras: []", "cameras: Tuple should have at least 1 item"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CameraConfigError, match=message):
        load_cameras(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CameraConfigError, match="cannot read camera registry"):
        load_cameras(tmp_path / "nope.yaml")


def test_demo_registry_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYCAM_FOOTAGE_DIR", "/srv/footage")
    demo = Path(__file__).parents[2] / "citycam" / "demo" / "cameras.yaml"
    assert len(load_cameras(demo).enabled) >= 2

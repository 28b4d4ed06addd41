from __future__ import annotations

from datetime import UTC, datetime, timedelta

from citycam.config import StreamsSettings
from schemas import BoundingBox, Detection, FrameDetections
from streams.density import add_frame, facts_for, parse_window_key, window_key, window_start

SETTINGS = StreamsSettings()
T0 = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)


def frame(seconds: float, *labels: tuple[str, float]) -> FrameDetections:
    ts = T0 + timedelta(seconds=seconds)
    dets = tuple(
        Detection(
            class_name=name, class_id=1, score=score, bbox=BoundingBox(x1=0, y1=0, x2=10, y2=10)
        )
        for name, score in labels
    )
    return FrameDetections(
        camera_id="cam",
        frame_id=f"cam-{seconds}",
        captured_at=ts,
        frame_uri="file:///f.jpg",
        width=100,
        height=100,
        model_name="m",
        model_version="1",
        inferred_at=ts,
        detections=dets,
    )


def test_windows_are_aligned_tumbling_minutes() -> None:
    assert window_start(T0.timestamp() + 59.999, 60) == int(T0.timestamp())
    assert window_start(T0.timestamp() + 60, 60) == int(T0.timestamp()) + 60
    assert parse_window_key(window_key("cam-a|b", 120)) == ("cam-a|b", 120)


def test_counts_vehicle_classes_above_threshold_only() -> None:
    state = add_frame(
        None,
        frame(0, ("car", 0.9), ("motorcycle", 0.8), ("motorcycle", 0.2), ("person", 0.99)),
        SETTINGS,
    )
    assert state is not None
    state = add_frame(state, frame(1, ("motorcycle", 0.7)), SETTINGS)
    assert state == {
        "frames": 2,
        "last_ts": T0.timestamp() + 1,
        "classes": {"car": [1, 1], "motorbike": [2, 1]},
    }


def test_riders_are_not_counted_as_pedestrians_their_vehicle_is_counted_once() -> None:
    settings = StreamsSettings(vehicle_classes={**SETTINGS.vehicle_classes, "person": "pedestrian"})
    box = BoundingBox(x1=0, y1=0, x2=10, y2=10)
    bike = Detection(class_name="motorcycle", class_id=4, score=0.9, bbox=box, riders=2)
    rider = Detection(class_name="person", class_id=1, score=0.9, bbox=box, rider_of=0)
    walker = Detection(class_name="person", class_id=1, score=0.9, bbox=box)
    riding = FrameDetections(
        **{
            **frame(0).model_dump(exclude={"detections"}),
            "detections": (bike, rider, rider, walker),
        }
    )
    state = add_frame(None, riding, settings)
    assert state is not None
    assert state["classes"] == {"motorbike": [1, 1], "pedestrian": [1, 1]}
    # With the default classes people are not counted at all, riders or not.
    default = add_frame(None, riding, SETTINGS)
    assert default is not None and default["classes"] == {"motorbike": [1, 1]}


def test_redelivered_frame_is_not_counted_twice() -> None:
    state = add_frame(None, frame(5, ("car", 0.9)), SETTINGS)
    assert add_frame(state, frame(5, ("car", 0.9)), SETTINGS) is None
    assert add_frame(state, frame(4, ("car", 0.9)), SETTINGS) is None


def test_facts_cover_every_class_with_pcu() -> None:
    state = {"frames": 4, "last_ts": 0.0, "classes": {"motorbike": [10, 4], "bus": [2, 1]}}
    facts = {f.vehicle_class: f for f in facts_for("cam", int(T0.timestamp()), state, SETTINGS)}
    assert set(facts) == {"bicycle", "bus", "car", "motorbike", "truck"}
    assert (facts["motorbike"].detections, facts["motorbike"].pcu) == (10, 3.0)
    assert facts["motorbike"].mean_in_view == 2.5
    assert (facts["bus"].pcu, facts["car"].detections, facts["car"].frames) == (5.0, 0, 4)
    assert facts["car"].window_end - facts["car"].window_start == timedelta(seconds=60)

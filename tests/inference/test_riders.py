"""Rider association by box geometry: who rides what, and who is only standing nearby."""

from __future__ import annotations

import numpy as np
import pytest

from inference.riders import NO_VEHICLE, associate_riders, rider_counts

# A side-on motorbike on the road, 120 px long, wheels' bottom at y=300.
BIKE = (100.0, 240.0, 220.0, 300.0)
# A person sitting on it: head well above, hips and legs over the bike, feet at the pegs.
DRIVER = (150.0, 160.0, 195.0, 290.0)


def associate(*boxes: tuple[str, tuple[float, float, float, float]]) -> list[int]:
    names = [name for name, _ in boxes]
    xyxy = np.array([box for _, box in boxes], dtype=np.float32)
    return associate_riders(xyxy, names).tolist()


def test_one_rider_rides_the_motorbike_under_them() -> None:
    assert associate(("motorcycle", BIKE), ("person", DRIVER)) == [NO_VEHICLE, 0]


def test_rider_of_a_bicycle_seen_head_on() -> None:
    # Frontal view: a narrow bicycle, the cyclist a little wider than it, feet on the pedals.
    bicycle = (300.0, 200.0, 330.0, 280.0)
    cyclist = (295.0, 130.0, 337.0, 270.0)
    assert associate(("person", cyclist), ("bicycle", bicycle)) == [1, NO_VEHICLE]


def test_pillion_and_overloading_three_riders_share_one_motorbike() -> None:
    pillion = (120.0, 165.0, 160.0, 288.0)
    child_in_front = (185.0, 200.0, 215.0, 285.0)
    rider_of = associate(
        ("person", pillion),
        ("motorcycle", BIKE),
        ("person", DRIVER),
        ("person", child_in_front),
    )
    assert rider_of == [1, NO_VEHICLE, 1, 1]
    assert rider_counts(np.array(rider_of)).tolist() == [0, 3, 0, 0]


@pytest.mark.parametrize(
    "pedestrian",
    [
        pytest.param((215.0, 130.0, 260.0, 302.0), id="standing-beside-the-front-wheel"),
        pytest.param((60.0, 125.0, 108.0, 298.0), id="standing-beside-the-back-wheel"),
        pytest.param((140.0, 190.0, 185.0, 360.0), id="walking-in-front-of-it"),
    ],
)
def test_pedestrian_next_to_a_parked_bike_is_not_a_rider(
    pedestrian: tuple[float, float, float, float],
) -> None:
    assert associate(("motorcycle", BIKE), ("person", pedestrian)) == [NO_VEHICLE, NO_VEHICLE]


def test_person_overlapping_two_bikes_rides_the_one_they_sit_over() -> None:
    # Two motorbikes squeezed together in a jam; the rider's legs reach over both boxes and
    # both would pass the rule alone, but they sit (centred, more overlap) over the second.
    first = (100.0, 240.0, 220.0, 300.0)
    second = (170.0, 242.0, 290.0, 302.0)
    rider = (185.0, 160.0, 235.0, 292.0)
    assert associate(("motorcycle", first), ("person", rider)) == [NO_VEHICLE, 0]
    assert associate(("motorcycle", first), ("motorcycle", second), ("person", rider)) == [
        NO_VEHICLE,
        NO_VEHICLE,
        1,
    ]
    # Listed the other way round: the choice follows geometry, not order.
    assert associate(("person", rider), ("motorcycle", second), ("motorcycle", first)) == [
        1,
        NO_VEHICLE,
        NO_VEHICLE,
    ]


def test_only_people_ride_and_only_two_wheelers_are_ridden() -> None:
    car = (100.0, 200.0, 260.0, 300.0)
    assert associate(("car", car), ("person", DRIVER)) == [NO_VEHICLE, NO_VEHICLE]
    assert associate(("dog", DRIVER), ("motorcycle", BIKE)) == [NO_VEHICLE, NO_VEHICLE]
    assert associate_riders(np.empty((0, 4)), []).tolist() == []

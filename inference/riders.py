"""Rider association: which person boxes ride which motorcycle or bicycle box, by geometry.

In motorbike-dominated traffic most people in view are riders, not pedestrians. A person
rides a vehicle when, in the image,
- the lower part of the person's box (hips and legs) lies largely inside the vehicle's box,
- their horizontal centres are close (a pillion sits behind the driver, still over the bike),
- the person's box does not reach clearly below the vehicle's bottom (a pedestrian in front
  of a parked bike stands lower in the image than its wheels).
Each person rides at most one vehicle, the best scoring one; a vehicle may carry several
riders (pillion, three on one motorbike). Pure numpy: no model, no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERSON = "person"
RIDDEN = frozenset({"bicycle", "motorcycle"})
NO_VEHICLE = -1


@dataclass(frozen=True)
class RiderRule:
    lower_part: float = 0.5
    """Share of the person's box height, from the bottom, that sits on the vehicle."""
    min_overlap: float = 0.4
    """Least share of that lower part lying inside the vehicle's box."""
    max_centre_offset: float = 0.5
    """Largest horizontal centre distance, as a share of the wider of the two boxes."""
    feet_tolerance: float = 0.15
    """How far, as a share of the vehicle's height, the person may reach below its bottom."""


def associate_riders(
    xyxy: np.ndarray, class_names: Sequence[str] | np.ndarray, rule: RiderRule = RiderRule()
) -> np.ndarray:
    """For each box, the index of the vehicle that person rides, or ``NO_VEHICLE``.

    ``xyxy`` is (N, 4) pixel boxes, ``class_names`` their N labels; only persons get a vehicle.
    """
    names = np.asarray(class_names, dtype=str)
    rider_of = np.full(len(names), NO_VEHICLE, dtype=np.int64)
    people = np.flatnonzero(names == PERSON)
    vehicles = np.flatnonzero(np.isin(names, list(RIDDEN)))
    if len(people) == 0 or len(vehicles) == 0:
        return rider_of
    boxes = np.asarray(xyxy, dtype=np.float64)
    score = rider_scores(boxes[people], boxes[vehicles], rule)
    best = score.argmax(axis=1)
    rides = score[np.arange(len(people)), best] > 0
    rider_of[people[rides]] = vehicles[best[rides]]
    return rider_of


def rider_scores(people: np.ndarray, vehicles: np.ndarray, rule: RiderRule) -> np.ndarray:
    """(P, V) scores in (0, 1] where person p could ride vehicle v, else 0.

    The score is the lower part's overlap share times how centred the person is, so a person
    squeezed between two bikes goes to the one they sit over.
    """
    p = people[:, None, :]
    v = vehicles[None, :, :]
    height = p[..., 3] - p[..., 1]
    lower_top = p[..., 3] - rule.lower_part * height
    overlap_w = np.minimum(p[..., 2], v[..., 2]) - np.maximum(p[..., 0], v[..., 0])
    overlap_h = np.minimum(p[..., 3], v[..., 3]) - np.maximum(lower_top, v[..., 1])
    lower_area = np.maximum((p[..., 2] - p[..., 0]) * rule.lower_part * height, 1e-9)
    overlap = np.clip(overlap_w, 0, None) * np.clip(overlap_h, 0, None) / lower_area
    wider = np.maximum(p[..., 2] - p[..., 0], v[..., 2] - v[..., 0])
    offset = np.abs((p[..., 0] + p[..., 2]) - (v[..., 0] + v[..., 2])) / 2 / wider
    feet_ok = p[..., 3] <= v[..., 3] + rule.feet_tolerance * (v[..., 3] - v[..., 1])
    possible = (overlap >= rule.min_overlap) & (offset <= rule.max_centre_offset) & feet_ok
    return np.where(possible, overlap * (1 - offset), 0.0)


def rider_counts(rider_of: np.ndarray) -> np.ndarray:
    """For each box, how many riders it carries (0 for anything not ridden)."""
    counts = np.zeros(len(rider_of), dtype=np.int64)
    ridden = rider_of[rider_of != NO_VEHICLE]
    np.add.at(counts, ridden, 1)
    return counts

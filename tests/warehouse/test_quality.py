"""The data-quality gate with the real great-expectations, and its quarantine table."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from prometheus_client import REGISTRY
from pydantic_core import TzInfo

from warehouse.migrate import migrate
from warehouse.quality import (
    QUARANTINE_COLUMNS,
    SUITES_DIR,
    QualityGate,
    QuarantinedRow,
    quarantine_row,
)
from warehouse.sink import COLUMNS

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
START = datetime(2026, 11, 22, 7, 30, tzinfo=UTC)
DENSITY = COLUMNS["traffic_density_1m"]
FRAMES = COLUMNS["frames"]

# expectation names in the traffic_density_1m suite
NOT_NULL = "expect_column_values_to_not_be_null({})"
BETWEEN = "expect_column_values_to_be_between({})"
REGEX = "expect_column_values_to_match_regex(camera_id)"
IN_SET = "expect_column_values_to_be_in_set(vehicle_class)"
MAX_LE_DETECTIONS = "expect_column_pair_values_a_to_be_greater_than_b(detections,max_in_view)"


@pytest.fixture(scope="module")
def gate() -> QualityGate:
    return QualityGate(clock=lambda: NOW)


def density(**changes: Any) -> list[Any]:
    """A valid traffic_density_1m row as the sink builds it (the golden example), changed."""
    row: dict[str, Any] = {
        "camera_id": "hue-le-loi-01",
        "window_start": START,
        "window_end": START + timedelta(seconds=60),
        "vehicle_class": "motorbike",
        "frames": 120,
        "detections": 342,
        "mean_in_view": 2.85,
        "max_in_view": 7,
        "pcu_factor": 0.3,
        "pcu": 102.6,
        "pcu_version": "tcvn4054-2005",
        "emitted_at": START + timedelta(seconds=65),
    }
    assert set(changes) <= set(row)
    row.update(changes)
    return [row[c] for c in DENSITY]


def frame(**changes: Any) -> list[Any]:
    row: dict[str, Any] = {
        "camera_id": "hue-le-loi-01",
        "frame_id": "hue-le-loi-01-1795332600000",
        "captured_at": START,
        "frame_uri": "file:///frames/hue-le-loi-01/1795332600000.jpg",
        "width": 1280,
        "height": 720,
        "model_name": "ssd_mobilenet_v2_coco",
        "model_version": "1",
        "inferred_at": START + timedelta(seconds=2),
        "detections": 4,
    }
    row.update(changes)
    return [row[c] for c in FRAMES]


def rows_total(table: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "citycam_quality_rows_total", {"table": table, "outcome": outcome}
    )
    return value or 0.0


def row_level_names(table: str) -> set[str]:
    suite = json.loads((SUITES_DIR / f"{table}.json").read_text())
    names = set()
    for e in suite["expectations"]:
        kw = e["kwargs"]
        columns = [kw[k] for k in ("column", "column_A", "column_B") if k in kw]
        names.add(f"{e['type']}({','.join(columns)})")
    return names


def test_a_clean_batch_passes_whole(gate: QualityGate) -> None:
    rows = [
        density(),
        density(vehicle_class="car", detections=0, mean_in_view=0.0, max_in_view=0, pcu=0.0),
        density(camera_id="cam_2", pcu_factor=1.0, pcu=342.0),
        density(mean_in_view=2.85004, pcu=102.60004),  # inside the rounding tolerance
        density(window_start=NOW + timedelta(seconds=30), window_end=NOW + timedelta(seconds=90)),
    ]
    valid, quarantined = gate.split("traffic_density_1m", rows, DENSITY)
    assert quarantined == []
    assert valid == rows and all(a is b for a, b in zip(valid, rows, strict=True))


# (row, the expectations it must fail, in suite order)
BAD_DENSITY: list[tuple[list[Any], list[str]]] = [
    *[(density(**{c: None}), [NOT_NULL.format(c)]) for c in DENSITY],
    (density(camera_id="Le Loi 01"), [REGEX]),
    (density(vehicle_class="plane"), [IN_SET]),
    (density(frames=0), [BETWEEN.format("frames"), BETWEEN.format("mean_in_view_error")]),
    (
        density(frames=3601, detections=3601, mean_in_view=1.0, pcu=1080.3),
        [BETWEEN.format("frames")],
    ),
    (
        density(detections=-1, mean_in_view=0.0, max_in_view=0, pcu=-0.3),
        [
            BETWEEN.format("detections"),
            MAX_LE_DETECTIONS,
            BETWEEN.format("mean_in_view_error"),
        ],
    ),
    (density(max_in_view=400), [MAX_LE_DETECTIONS]),
    (
        density(max_in_view=1001, detections=1001, frames=120, mean_in_view=8.3417, pcu=300.3),
        [BETWEEN.format("max_in_view")],
    ),
    (
        density(frames=1, detections=600, mean_in_view=600.0, max_in_view=600, pcu=180.0),
        [BETWEEN.format("mean_in_view")],
    ),
    (density(mean_in_view=2.9), [BETWEEN.format("mean_in_view_error")]),
    (density(pcu_factor=0.0, pcu=0.0), [BETWEEN.format("pcu_factor")]),
    (density(pcu_factor=12.0, pcu=4104.0), [BETWEEN.format("pcu_factor")]),
    (density(pcu=100.0), [BETWEEN.format("pcu_error")]),
    (
        density(pcu_factor=-1.0, pcu=102.6),
        [BETWEEN.format("pcu_factor"), BETWEEN.format("pcu_error")],
    ),
    (
        density(window_end=START + timedelta(seconds=120)),
        [BETWEEN.format("window_length_s")],
    ),
    (
        density(window_start=NOW + timedelta(hours=1), window_end=NOW + timedelta(minutes=61)),
        [BETWEEN.format("window_start_ahead_of_now_s")],
    ),
    (
        density(camera_id="BAD", vehicle_class="tram"),
        [REGEX, IN_SET],
    ),
]


def test_bad_rows_are_split_off_with_every_expectation_they_failed(gate: QualityGate) -> None:
    good = [density(camera_id=f"cam-{i}") for i in range(4)]
    rows: list[list[Any]] = []
    for i, (bad, _) in enumerate(BAD_DENSITY):
        rows += [bad, good[i % len(good)]]
    valid, quarantined = gate.split("traffic_density_1m", rows, DENSITY)

    assert valid == [good[i % len(good)] for i in range(len(BAD_DENSITY))]  # kept, in order
    assert [q.failed_expectations for q in quarantined] == [
        tuple(failed) for _, failed in BAD_DENSITY
    ]
    assert all(q.table == "traffic_density_1m" for q in quarantined)
    assert [q.index for q in quarantined] == list(range(0, len(rows), 2))
    # every row-level expectation of the suite is violated at least once
    violated = {name for q in quarantined for name in q.failed_expectations}
    assert violated == row_level_names("traffic_density_1m")
    # the row is JSON-able, datetimes as ISO strings
    first = quarantined[0]
    assert first.row["camera_id"] is None and first.row["window_start"] == START.isoformat()
    assert json.loads(json.dumps(first.row)) == first.row
    assert [q.row for q in quarantined] == [
        dict(zip(DENSITY, r, strict=True))
        for r in [json.loads(json.dumps(r, default=datetime.isoformat)) for r, _ in BAD_DENSITY]
    ]


def test_frames_suite(gate: QualityGate) -> None:
    rows = [
        frame(),
        frame(width=0),
        frame(width=0, height=0),
        frame(detections=-2),
        frame(inferred_at=START - timedelta(minutes=2)),
        frame(inferred_at=START - timedelta(seconds=30)),  # clock skew allowed
        frame(camera_id="Cam A", frame_id=None),
    ]
    valid, quarantined = gate.split("frames", rows, FRAMES)
    assert valid == [rows[0], rows[5]]
    assert [q.failed_expectations for q in quarantined] == [
        (BETWEEN.format("width"),),
        (BETWEEN.format("width"), BETWEEN.format("height")),
        (BETWEEN.format("detections"),),
        (BETWEEN.format("inference_lag_s"),),
        (NOT_NULL.format("frame_id"), REGEX),
    ]
    violated = {name for q in quarantined for name in q.failed_expectations}
    assert violated == row_level_names("frames") - {
        NOT_NULL.format(c) for c in FRAMES if c != "frame_id"
    }


def test_times_validate_whatever_zone_object_or_offset_they_carry(gate: QualityGate) -> None:
    """pydantic, msgspec and producers in local time each give aware times of their own."""
    hanoi = timezone(timedelta(hours=7))
    rows = [
        frame(),  # datetime.UTC
        frame(captured_at=START.replace(tzinfo=TzInfo(0)), inferred_at=NOW.astimezone(hanoi)),
        frame(captured_at=START.astimezone(hanoi), inferred_at=START - timedelta(minutes=2)),
    ]
    valid, quarantined = gate.split("frames", rows, FRAMES)
    assert valid == rows[:2]
    assert [q.failed_expectations for q in quarantined] == [(BETWEEN.format("inference_lag_s"),)]


def test_a_5000_row_batch_splits_correctly(gate: QualityGate) -> None:
    rows = []
    for i in range(5000):
        start = START - timedelta(minutes=i % 600)
        row = density(window_start=start, window_end=start + timedelta(seconds=60))
        if i % 97 == 0:
            row = density(frames=0)
        elif i % 89 == 0:
            row = density(max_in_view=500, camera_id="X")
        rows.append(row)
    bad = {i for i in range(5000) if i % 97 == 0 or i % 89 == 0}
    started = time.perf_counter()
    valid, quarantined = gate.split("traffic_density_1m", rows, DENSITY)
    elapsed = time.perf_counter() - started
    print(f"\n5,000-row traffic_density_1m batch validated in {elapsed:.3f} s")
    assert valid == [r for i, r in enumerate(rows) if i not in bad]
    assert len(quarantined) == len(bad)
    assert quarantined[0].failed_expectations == (
        BETWEEN.format("frames"),
        BETWEEN.format("mean_in_view_error"),
    )
    assert quarantined[1].failed_expectations == (REGEX, MAX_LE_DETECTIONS)


def test_tables_without_a_suite_pass_through_uncounted(gate: QualityGate) -> None:
    assert {"traffic_density_1m", "frames"} <= gate.tables()
    assert "detections" not in gate.tables()
    before = rows_total("detections", "validated")
    rows: list[list[Any]] = [["anything", None, -1]]
    valid, quarantined = gate.split("detections", rows, ["a", "b", "c"])
    assert valid == rows and quarantined == []
    assert rows_total("detections", "validated") == before
    assert gate.split("traffic_density_1m", [], DENSITY) == ([], [])


def test_a_batch_missing_a_suite_column_is_an_error(gate: QualityGate) -> None:
    with pytest.raises(ValueError, match="needs columns"):
        gate.split("traffic_density_1m", [row[:-1] for row in [density()]], DENSITY[:-1])


def test_metrics_count_validated_quarantined_and_loaded(gate: QualityGate) -> None:
    table = "traffic_density_1m"
    before = {o: rows_total(table, o) for o in ("validated", "quarantined", "loaded")}
    failures = "citycam_quality_expectation_failures_total"
    labels = {"table": table, "expectation": IN_SET}
    failures_before = REGISTRY.get_sample_value(failures, labels) or 0.0
    valid, _ = gate.split(
        table, [density(), density(vehicle_class="x"), density(vehicle_class="y")], DENSITY
    )
    gate.record_loaded(table, len(valid))
    assert rows_total(table, "validated") - before["validated"] == 3
    assert rows_total(table, "quarantined") - before["quarantined"] == 2
    assert rows_total(table, "loaded") - before["loaded"] == 1
    assert (REGISTRY.get_sample_value(failures, labels) or 0.0) - failures_before == 2


def runs(result_format: str) -> float:
    """great-expectations runs over traffic_density_1m batches, counted in this process."""
    labels = {"table": "traffic_density_1m", "result_format": result_format}
    return REGISTRY.get_sample_value("citycam_quality_validation_runs_total", labels) or 0.0


def test_only_a_batch_that_failed_something_is_validated_again_in_detail(
    gate: QualityGate,
) -> None:
    before = (runs("BOOLEAN_ONLY"), runs("COMPLETE"))
    assert gate.split("traffic_density_1m", [density(), density()], DENSITY)[1] == []
    assert (runs("BOOLEAN_ONLY"), runs("COMPLETE")) == (before[0] + 1, before[1])
    _, quarantined = gate.split("traffic_density_1m", [density(), density(frames=0)], DENSITY)
    assert [q.index for q in quarantined] == [1]
    assert (runs("BOOLEAN_ONLY"), runs("COMPLETE")) == (before[0] + 2, before[1] + 1)


def test_the_gate_keeps_no_validation_results_once_returned(gate: QualityGate) -> None:
    """great-expectations stores every run's result in its context; a sink validates a batch
    every few seconds for months, so the gate must not let them pile up."""
    for frames in (1, 0, 1):  # a clean batch (one run), a failing one (two runs), a clean one
        gate.split("traffic_density_1m", [density(), density(frames=frames)], DENSITY)
    assert gate._context.validation_results_store.list_keys() == []


def test_suites_in_the_repo_are_ge_suites_as_ge_writes_them() -> None:
    from great_expectations.core.expectation_suite import (
        ExpectationSuite,
        ExpectationSuiteSchema,
    )

    paths = sorted(SUITES_DIR.glob("*.json"))
    expected = {"traffic_density_1m", "frames", "line_crossings_1m", "zone_occupancy_1m"}
    assert expected <= {p.stem for p in paths}
    for path in paths:
        text = path.read_text()
        suite = ExpectationSuite(**ExpectationSuiteSchema().loads(text))
        assert suite.name == path.stem and path.stem in COLUMNS
        assert len(suite.expectations) > 5
        assert ExpectationSuiteSchema().dumps(suite, indent=2, sort_keys=True) + "\n" == text
        derived = set(suite.meta["citycam"]["derived_columns"])
        for expectation in suite.expectations:
            kwargs = expectation.configuration.kwargs
            for key in ("column", "column_A", "column_B"):
                if key in kwargs:
                    assert kwargs[key] in set(COLUMNS[path.stem]) | derived


def write_suite(folder: Path, name: str, expectations: list[Any], meta: dict[str, Any]) -> None:
    """Write a suite file as great-expectations does (what a contributor would commit)."""
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuiteSchema

    suite = gx.ExpectationSuite(name=name, expectations=expectations, meta=meta)
    (folder / f"{name}.json").write_text(ExpectationSuiteSchema().dumps(suite, indent=2))


@pytest.fixture
def widget_suites(tmp_path: Path) -> Iterator[Path]:
    import great_expectations.expectations as gxe

    write_suite(
        tmp_path,
        "widgets",
        [
            gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=2),
            gxe.ExpectColumnMeanToBeBetween(column="size", max_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="colour", value_set={"$PARAMETER": "colours"}),
            gxe.ExpectColumnValuesToBeBetween(column="area", max_value=100),
        ],
        {"citycam": {"derived_columns": {"area": "size * size"}, "parameters": {"colours": []}}},
    )
    yield tmp_path


def test_adding_a_table_is_adding_a_suite_file_and_table_level_failures_keep_rows(
    widget_suites: Path,
) -> None:
    gate = QualityGate(widget_suites, parameters={"colours": ["red", "blue"], "unused": 1})
    assert gate.tables() == {"widgets"}
    failed_batches = "citycam_quality_table_expectation_failures_total"
    labels = {"table": "widgets", "expectation": "expect_table_row_count_to_be_between()"}
    before = REGISTRY.get_sample_value(failed_batches, labels) or 0.0
    rows = [["red", 3], ["green", 20], ["blue", 5]]  # 3 rows, mean size 9.3: table-level fails
    valid, quarantined = gate.split("widgets", rows, ["colour", "size"])
    assert valid == [["red", 3], ["blue", 5]]
    assert quarantined == [
        QuarantinedRow(
            "widgets",
            {"colour": "green", "size": 20},
            (
                "expect_column_values_to_be_in_set(colour)",
                "expect_column_values_to_be_between(area)",
            ),
        )
    ]
    assert (REGISTRY.get_sample_value(failed_batches, labels) or 0.0) - before == 1


def test_a_suite_parameter_without_a_value_is_refused(tmp_path: Path) -> None:
    import great_expectations.expectations as gxe

    write_suite(
        tmp_path,
        "widgets",
        [gxe.ExpectColumnValuesToBeInSet(column="colour", value_set={"$PARAMETER": "colours"})],
        {},
    )
    with pytest.raises(ValueError, match="no value for suite parameters"):
        QualityGate(tmp_path)


def test_an_isolated_gate_reports_a_broken_suite_with_its_own_error(tmp_path: Path) -> None:
    """The child loads the suites in the background; their error still reaches the caller."""
    import great_expectations.expectations as gxe

    write_suite(
        tmp_path,
        "widgets",
        [gxe.ExpectColumnValuesToBeInSet(column="colour", value_set={"$PARAMETER": "colours"})],
        {},
    )
    isolated = QualityGate(tmp_path, isolated=True)
    try:
        with pytest.raises(ValueError, match="no value for suite parameters"):
            isolated.tables()
        with pytest.raises(ValueError, match="no value for suite parameters"):
            isolated.split("widgets", [["red"]], ["colour"])
    finally:
        isolated.close()


def test_quarantined_rows_are_stored_once_however_often_delivered(
    gate: QualityGate, connect: Callable[..., Client]
) -> None:
    database = f"quality_{uuid.uuid4().hex[:8]}"
    client = connect(database=None)
    migrate(client, database, 7)
    rows = [density(), density(frames=0), density(vehicle_class="plane"), density(pcu=1.0)]
    _, quarantined = gate.split("traffic_density_1m", rows, DENSITY)
    assert len(quarantined) == 3
    for attempt in range(2):  # a crash before the offset commit re-delivers the batch
        at = NOW + timedelta(seconds=attempt)
        records = [
            quarantine_row(q, "citycam.facts.traffic-density.v1", 1, 40 + i, at)
            for i, q in enumerate(quarantined)
        ]
        client.insert(f"{database}.quarantine", records, column_names=QUARANTINE_COLUMNS)
    stored = client.query(
        "SELECT table_name, failed_expectations, row_json, source_topic, source_partition,"
        f" source_offset, quarantined_at FROM {database}.quarantine FINAL ORDER BY source_offset"
    ).result_rows
    assert len(stored) == 3
    for q, (table, failed, row_json, topic, partition, _, at) in zip(
        quarantined, stored, strict=True
    ):
        assert (table, tuple(failed), json.loads(row_json)) == (
            "traffic_density_1m",
            q.failed_expectations,
            q.row,
        )
        assert (topic, partition) == ("citycam.facts.traffic-density.v1", 1)
        assert at.replace(tzinfo=UTC) == NOW + timedelta(seconds=1)  # the latest verdict
    assert [r[5] for r in stored] == [40, 41, 42]
    client.command(f"DROP DATABASE {database}")


def test_an_isolated_gate_splits_as_the_gate_in_this_process(gate: QualityGate) -> None:
    isolated = QualityGate(clock=lambda: NOW, isolated=True)
    try:
        rows = [bad for bad, _ in BAD_DENSITY] + [density(camera_id="cam-9")]
        assert isolated.tables() == gate.tables()
        before = runs("COMPLETE")
        assert isolated.split("traffic_density_1m", rows, DENSITY) == gate.split(
            "traffic_density_1m", rows, DENSITY
        )
        assert runs("COMPLETE") == before + 2  # the child's runs are counted here too
        with pytest.raises(ValueError, match="the suite needs columns"):
            isolated.split("traffic_density_1m", [r[:-1] for r in rows], DENSITY[:-1])
    finally:
        isolated.close()


def test_an_isolated_gates_process_ends_with_its_parent(tmp_path: Path) -> None:
    """A sink killed with SIGKILL must not leave its validation process behind."""
    import os
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import multiprocessing, pathlib, time\n"
            "from warehouse.quality import QualityGate\n"
            "if __name__ == '__main__':\n"
            "    gate = QualityGate(isolated=True)\n"
            "    (child,) = multiprocessing.active_children()\n"
            f"    pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))\n"
            "    time.sleep(600)\n",
        ],
        cwd=Path(__file__).parents[2],
    )
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() and parent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        child = int(pid_file.read_text())
        os.kill(child, 0)  # alive while its parent is
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child), "the validation process outlived its killed parent"


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by init) counts as ended
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(") ")[-1][:1] != "Z"

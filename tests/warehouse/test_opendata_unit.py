"""Open-data export parts without a warehouse: periods, the personal-data check, publishing
targets (a local directory and an fsspec memory:// object store), catalog, portal, NGSI-LD."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from warehouse.opendata import geo, ngsi_ld, privacy
from warehouse.opendata.catalog import (
    CSV,
    PARQUET,
    CatalogInfo,
    DatasetFiles,
    PublishedFile,
    period_catalog,
    root_catalog,
)
from warehouse.opendata.command import requested_period
from warehouse.opendata.datasets import DATASETS, datasets_for
from warehouse.opendata.periods import Period
from warehouse.opendata.portal import busiest_cameras, render_index
from warehouse.opendata.publish import VERSIONS, LocalTarget, ObjectStoreTarget, open_target
from warehouse.opendata.tables import Column
from warehouse.opendata.validate import SUITES_DIR

DAY = Period.parse("day", "2026-11-22")
HOUR = Period.parse("hour", "2026-11-22T14")


# ---------------------------------------------------------------------------------------------
# Periods


@pytest.mark.parametrize(
    ("kind", "text", "hour", "start", "period_id"),
    [
        ("day", "2026-11-22", None, datetime(2026, 11, 22, tzinfo=UTC), "2026-11-22"),
        ("hour", "2026-11-22T14", None, datetime(2026, 11, 22, 14, tzinfo=UTC), "2026-11-22T14"),
        ("hour", "2026-11-22", 9, datetime(2026, 11, 22, 9, tzinfo=UTC), "2026-11-22T09"),
        ("hour", "2026-11-22T14:00Z", 14, datetime(2026, 11, 22, 14, tzinfo=UTC), "2026-11-22T14"),
    ],
)
def test_periods_parse_to_utc_intervals(
    kind: Any, text: str, hour: int | None, start: datetime, period_id: str
) -> None:
    period = Period.parse(kind, text, hour)
    assert (period.start, period.id) == (start, period_id)
    assert period.end - period.start == (timedelta(days=1) if kind == "day" else timedelta(hours=1))
    assert Period.from_id(period.id) == period


@pytest.mark.parametrize(
    ("kind", "text", "hour", "error"),
    [
        ("day", "2026-11-22T14", None, "takes no hour"),
        ("hour", "2026-11-22", None, "needs an hour"),
        ("hour", "2026-11-22", 24, "0..23"),
        ("hour", "2026-11-22T14", 15, "disagree"),
        ("day", "22/11/2026", None, "must look like"),
        ("week", "2026-11-22", None, "day or hour"),
        ("day", "2026-02-30", None, "day is out of range"),
    ],
)
def test_bad_periods_are_refused(kind: Any, text: str, hour: int | None, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Period.parse(kind, text, hour)


def test_last_complete_period_is_yesterday_or_the_previous_hour() -> None:
    now = datetime(2026, 11, 22, 0, 30, tzinfo=UTC)
    assert Period.last_complete("day", now).id == "2026-11-21"
    assert Period.last_complete("hour", now).id == "2026-11-21T23"


@pytest.mark.parametrize(
    ("kind", "text", "hour", "expected"),
    [
        (None, "2026-11-22", None, "2026-11-22"),
        (None, "2026-11-22T14", None, "2026-11-22T14"),
        (None, "2026-11-22", 14, "2026-11-22T14"),
        ("hour", "2026-11-22T14", None, "2026-11-22T14"),
        (None, None, None, "2026-11-22"),  # the last complete day
        ("hour", None, None, "2026-11-23T09"),
    ],
)
def test_the_command_line_names_a_period(
    kind: Any, text: str | None, hour: int | None, expected: str
) -> None:
    now = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    assert requested_period(kind, text, hour, now).id == expected


def test_the_command_line_refuses_periods_that_have_not_started() -> None:
    now = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="has not started"):
        requested_period(None, "2026-11-23T11", None, now)
    with pytest.raises(ValueError, match="--hour needs --date"):
        requested_period(None, None, 3, now)


# ---------------------------------------------------------------------------------------------
# Personal data


def test_personal_columns_are_refused_by_name() -> None:
    columns = ["camera_id", "hour", "frame_uri", "evidence_frame_id", "track_id", "plate_text",
               "face_count", "person_id", "licence_number", "pcu"]  # fmt: skip
    flagged = [f.detail.split("'")[1] for f in privacy.scan_columns("d", columns)]
    assert flagged == columns[2:-1]


def test_values_that_look_like_frame_references_are_refused() -> None:
    findings = privacy.scan_values(
        "traffic_alerts",
        {
            "alert_id": ["congestion:cam:junction:20261122T140500Z"],
            "note": ["see s3://frames/cam/1.jpg", "ok", None, 3.5],
            "name": ["Le Loi street crossing", "snapshot.JPEG"],
        },
    )
    assert [(f.check, f.detail.split(":")[0]) for f in findings] == [
        ("frame_reference", "column 'note'"),
        ("frame_reference", "column 'name'"),
    ]
    assert privacy.scan_text("x.csv", 'a,"file:///srv/frames/1.jpg"\n')
    assert not privacy.scan_text("x.jsonld", '{"@context": "https://uri.etsi.org/ngsi-ld/"}')


def test_every_dataset_has_a_suite_that_fixes_its_columns() -> None:
    suites = {p.stem: json.loads(p.read_text()) for p in SUITES_DIR.glob("*.json")}
    assert set(suites) == {d.name for d in DATASETS}
    for name, suite in suites.items():
        column_sets = [
            e["kwargs"]["column_set"]
            for e in suite["expectations"]
            if e["type"] == "expect_table_columns_to_match_set"
        ]
        assert len(column_sets) == 1 and not privacy.scan_columns(name, column_sets[0]), name


# ---------------------------------------------------------------------------------------------
# Publishing


def staging(folder: Path, content: str) -> Path:
    folder.mkdir(parents=True)
    for name in ("cameras.csv", "cameras.parquet", "catalog.jsonld"):
        text = json.dumps({"dcat:version": content}) if name == "catalog.jsonld" else content
        (folder / name).write_text(text)
    return folder


def test_local_target_swaps_a_symlink_and_removes_the_old_version(tmp_path: Path) -> None:
    target = open_target(str(tmp_path / "root"))
    assert isinstance(target, LocalTarget)
    target.publish_period(HOUR.id, "v1", staging(tmp_path / "s1", "one"))
    link = target.root / HOUR.id
    assert (link / "cameras.csv").read_text() == "one"
    (target.root / VERSIONS / HOUR.id / ".v0.partial").mkdir()  # left by a crashed export
    target.publish_period(HOUR.id, "v2", staging(tmp_path / "s2", "two"))
    assert (link / "cameras.csv").read_text() == "two"
    assert link.readlink() == Path(VERSIONS) / HOUR.id / "v2"
    assert [p.name for p in (target.root / VERSIONS / HOUR.id).iterdir()] == ["v2"]
    assert target.period_ids() == [HOUR.id]
    assert target.read_period_catalog(HOUR.id) == {"dcat:version": "two"}
    assert target.relative_path(HOUR.id, "v2", "cameras.csv") == f"{HOUR.id}/cameras.csv"


def test_local_target_keeps_the_old_version_when_publishing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = LocalTarget(tmp_path / "root")
    target.publish_period(HOUR.id, "v1", staging(tmp_path / "s1", "one"))

    def copy_half(source: Path, destination: Path) -> None:
        destination.mkdir()
        (destination / "cameras.csv").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copytree", copy_half)
    with pytest.raises(OSError, match="disk full"):
        target.publish_period(HOUR.id, "v2", staging(tmp_path / "s2", "two"))
    assert (target.root / HOUR.id / "cameras.csv").read_text() == "one"
    assert target.period_ids() == [HOUR.id]


def test_local_target_refuses_to_replace_a_folder_it_did_not_publish(tmp_path: Path) -> None:
    target = open_target((tmp_path / "root").as_uri())
    assert isinstance(target, LocalTarget)
    (tmp_path / "root" / DAY.id).mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not an export symlink"):
        target.publish_period(DAY.id, "v1", staging(tmp_path / "s", "x"))


def test_local_root_files_are_replaced_whole(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path)
    target.write_root_file("index.html", b"old")
    target.write_root_file("index.html", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]
    assert (tmp_path / "index.html").read_bytes() == b"new"


def memory_target() -> ObjectStoreTarget:
    target = open_target(f"memory://unit-{time.time_ns()}")
    assert isinstance(target, ObjectStoreTarget)
    return target


def test_object_store_target_commits_with_the_catalog_put(tmp_path: Path) -> None:
    target = memory_target()
    target.publish_period(HOUR.id, "v1", staging(tmp_path / "s1", "v1"))
    target.publish_period(HOUR.id, "v2", staging(tmp_path / "s2", "v2"))
    assert target.read_file(HOUR.id, "cameras.csv") == b"v2"
    assert target.fs.ls(f"{target.root}/{HOUR.id}/v", detail=False) == [
        f"{target.root}/{HOUR.id}/v/v2"
    ]
    assert target.period_ids() == [HOUR.id]
    assert target.relative_path(HOUR.id, "v2", "a.csv") == f"{HOUR.id}/v/v2/a.csv"


def test_object_store_target_serves_the_old_version_until_the_catalog_is_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = memory_target()
    target.publish_period(HOUR.id, "v1", staging(tmp_path / "s1", "v1"))

    def refuse(path: str, data: bytes) -> None:
        raise OSError("connection reset")

    monkeypatch.setattr(target.fs, "pipe_file", refuse)
    with pytest.raises(OSError, match="connection reset"):
        target.publish_period(HOUR.id, "v2", staging(tmp_path / "s2", "v2"))
    assert target.read_period_catalog(HOUR.id) == {"dcat:version": "v1"}
    assert target.read_file(HOUR.id, "cameras.csv") == b"v1"


# ---------------------------------------------------------------------------------------------
# Catalog and portal


def sample_catalog(root_url: str, period: Period, version: str) -> dict[str, Any]:
    dataset = next(d for d in DATASETS if d.name == "cameras")
    columns = (Column("camera_id", "String", "Camera id."), Column("lat", "Float64", "Latitude."))
    files = (
        PublishedFile("cameras.csv", CSV, 1234, "ab" * 32, 3),
        PublishedFile("cameras.parquet", PARQUET, 4321, "cd" * 32, 3),
    )
    info = CatalogInfo(root_url=root_url, publisher="Hue <city>")
    return period_catalog(
        info,
        period,
        [DatasetFiles(dataset, columns, files)],
        lambda name: info.url(f"{period.id}/{name}"),
        version,
        datetime(2026, 11, 23, 1, tzinfo=UTC),
        (107.58, 16.46, 107.59, 16.47),
    )


def test_catalog_is_dcat_ap_json_ld() -> None:
    from rdflib import Graph, Literal, URIRef
    from rdflib.namespace import DCAT, DCTERMS, RDF, XSD

    catalog = sample_catalog("https://data.example.org/traffic", DAY, "v1")
    graph = Graph().parse(data=json.dumps(catalog), format="json-ld")
    csv = URIRef(f"https://data.example.org/traffic/{DAY.id}/cameras.csv")
    assert (csv, RDF.type, DCAT.Distribution) in graph
    assert graph.value(csv, DCAT.byteSize) == Literal(1234, datatype=XSD.nonNegativeInteger)
    assert graph.value(csv, DCAT.mediaType) == URIRef(
        "https://www.iana.org/assignments/media-types/text/csv"
    )
    dataset = URIRef(f"https://data.example.org/traffic/{DAY.id}/cameras")
    assert (dataset, DCAT.distribution, csv) in graph
    spatial = graph.value(dataset, DCTERMS.spatial)
    assert str(graph.value(spatial, DCAT.bbox)).startswith("POLYGON((107.58 16.46")


def test_root_catalog_merges_periods_newest_first_each_series_once() -> None:
    root = "https://data.example.org/traffic"
    periods = [sample_catalog(root, HOUR, "v2"), sample_catalog(root, DAY, "v1")]
    merged = root_catalog(CatalogInfo(root_url=root), periods, datetime(2026, 11, 23, tzinfo=UTC))
    kinds = [n["@type"] for n in merged["dcat:dataset"]]
    assert kinds == ["dcat:DatasetSeries", "dcat:Dataset", "dcat:Dataset"]
    identifiers = [n["dct:identifier"] for n in merged["dcat:dataset"][1:]]
    assert identifiers == [f"cameras/{HOUR.id}", f"cameras/{DAY.id}"]


def test_portal_page_is_escaped_static_html_with_relative_links() -> None:
    root = "https://data.example.org/traffic"
    catalog = root_catalog(
        CatalogInfo(root_url=root, publisher="Hue <city>"),
        [sample_catalog(root, DAY, "v1")],
        datetime(2026, 11, 23, tzinfo=UTC),
    )
    preview = busiest_cameras(
        {
            "features": [
                {"properties": {"camera_id": "a", "camera_name": "<script>x</script>",
                                "district": "D", "vehicle_crossings": 5,
                                "pedestrian_crossings": 1, "pcu": 4.0, "alerts": 0,
                                "mean_vehicles_in_view": 1.25}},
                {"properties": {"camera_id": "b", "camera_name": "Busy", "district": "D",
                                "vehicle_crossings": 50, "pedestrian_crossings": 0,
                                "pcu": 40.0, "alerts": 2, "mean_vehicles_in_view": 9.0}},
            ]
        }
    )  # fmt: skip
    assert [c["camera_id"] for c in preview] == ["b", "a"]
    html = render_index(catalog, preview, DAY.label)
    assert "<script" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "Hue &lt;city&gt;" in html
    assert f'href="{DAY.id}/cameras.csv"' in html and 'href="catalog.jsonld"' in html
    assert "1.2 kB" in html and "ab" * 32 in html and "9.0" in html
    assert "2026-11-22 (UTC)" in html
    assert "<code>camera_id</code>" in html  # the columns, from the CSV's table schema


# ---------------------------------------------------------------------------------------------
# NGSI-LD and GeoJSON


def flow_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "camera_id": "cam", "line_id": "l1", "direction": "eastbound",
        "orientation": "negative", "vehicle_class": "truck", "road_segment": None,
        "lat": 16.46, "lon": 107.59, "hour": pd.Timestamp("2026-11-22T14:00Z"),
        "crossings": 7, "speed_kmh_mean": float("nan"),
    }  # fmt: skip
    return row | changes


def test_ngsi_ld_mapping_of_an_hourly_flow_row() -> None:
    entity = ngsi_ld.traffic_flow_observed(flow_row())
    assert entity is not None
    assert entity["id"] == (
        "urn:ngsi-ld:TrafficFlowObserved:citycam:cam:l1:negative:truck:1795356000:PT1H"
    )
    assert entity["vehicleType"]["value"] == "lorry"
    assert entity["laneDirection"]["value"] == "backward"
    assert entity["dateObserved"]["value"] == "2026-11-22T14:00:00Z/2026-11-22T15:00:00Z"
    assert entity["location"]["value"]["coordinates"] == [107.59, 16.46]
    assert "averageVehicleSpeed" not in entity and "refRoadSegment" not in entity
    assert ngsi_ld.traffic_flow_observed(flow_row(vehicle_class="pedestrian")) is None
    fast = ngsi_ld.traffic_flow_observed(flow_row(speed_kmh_mean=31.0, road_segment="le-loi-1"))
    assert fast is not None and fast["averageVehicleSpeed"]["value"] == 31.0


def test_geojson_figures_sum_the_period_per_camera() -> None:
    density = pd.DataFrame(
        {"camera_id": ["a", "a", "a"], "vehicle_class": ["car", "car", "bus"],
         "minutes_covered": [60, 20, 60], "mean_vehicles_in_view": [2.0, 4.0, 0.5],
         "vehicle_detections": [3, 4, 0], "pcu": [1, 2, 0]}
    )  # fmt: skip
    flow = pd.DataFrame(
        {"camera_id": ["a", "a", "b"], "vehicle_class": ["car", "pedestrian", "bus"],
         "crossings": [5, 2, 1]}
    )  # fmt: skip
    alerts = pd.DataFrame({"camera_id": ["b"]})
    figures = geo.camera_figures(density, flow, alerts)
    assert figures["a"] == {"vehicle_detections": 7, "pcu": 3.0, "vehicle_crossings": 5,
                            "pedestrian_crossings": 2, "alerts": 0,
                            "mean_vehicles_in_view": 2.5 + 0.5}  # fmt: skip
    assert figures["b"]["vehicle_crossings"] == 1 and figures["b"]["alerts"] == 1
    cameras = pd.DataFrame(
        {"camera_id": ["a", "c"], "camera_name": ["A", "C"], "district": ["D", "D"],
         "road_segment": ["s", None], "road_class": [None, None], "lat": [16.4, 16.5],
         "lon": [107.5, 107.6], "active": [True, False]}
    )  # fmt: skip
    document = geo.cameras_geojson(cameras, figures, DAY)
    assert [f["geometry"]["coordinates"] for f in document["features"]] == [
        [107.5, 16.4],
        [107.6, 16.5],
    ]
    assert document["features"][1]["properties"]["vehicle_crossings"] == 0
    assert document["features"][1]["properties"]["road_segment"] is None


def test_daily_datasets_are_not_in_hour_exports() -> None:
    assert {d.name for d in DATASETS} - {d.name for d in datasets_for("hour")} == {
        "traffic_density_daily",
        "violation_counts_daily",
    }

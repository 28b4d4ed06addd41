"""Open-data exports against a real warehouse endpoint (one per module, its own data).

The warehouse is seeded through the writer user with realistic rows in the real tables, the
personal and internal fields filled in (plates, frame URIs, track ids, evidence frames), then
exported through the open-data user to a local directory and to an object store
(fsspec memory://), read back with pandas/pyarrow and compared with the warehouse.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pandas as pd
import pyarrow.parquet as pq
import pytest
from clickhouse_connect.driver.client import Client

from citycam.cli import main as citycam_main
from tests.warehouse.conftest import Endpoint, launch_endpoint
from tests.warehouse.opendata_readback import (
    assert_same_rows,
    read_csv,
    rows_of,
    warehouse_rows,
)
from warehouse.dimensions import CAMERA_COLUMNS
from warehouse.migrate import migrate
from warehouse.opendata.catalog import CatalogInfo
from warehouse.opendata.datasets import datasets_for
from warehouse.opendata.export import (
    ExportResult,
    NotOpenDataUser,
    ensure_open_data_only,
    export_period,
)
from warehouse.opendata.periods import Period
from warehouse.opendata.publish import VERSIONS, LocalTarget, ObjectStoreTarget, open_target
from warehouse.opendata.validate import ExportRejected, ExportValidator
from warehouse.rollups import wait_for_rollups

DAY = Period.parse("day", "2026-11-22")
HOUR = Period.parse("hour", "2026-11-22T14")
T0 = DAY.start
LOADED = datetime(2026, 11, 23, 1, tzinfo=UTC)
# seeded plates, frame ids and frame URIs (evidence of alerts, violations and events)
PERSONAL = ("75A-123.45", "75B-555.55", "frame-", "file:///srv", "s3://", ".jpg", "file:///")
CAMERAS = [
    # camera_id, name, lat, lon, district, road_segment, road_class
    ("hue-le-loi-01", "Le Loi street crossing", 16.4637, 107.5909, "Phu Hoi", "le-loi-1", "urban_arterial"),  # noqa: E501
    ("hue-trang-tien-01", "Trang Tien bridge", 16.4672, 107.5880, "Phu Hoi", None, None),
    ("hue-dong-ba-01", "Dong Ba market", 16.4722, 107.5801, "Phu Hoa", "tran-hung-dao-2", "urban_collector"),  # noqa: E501
]  # fmt: skip
GHOST = "hue-ghost-99"  # facts of a camera that is not in the registry are never published


# ---------------------------------------------------------------------------------------------
# The warehouse


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Endpoint, ExportValidator]]:
    """A seeded warehouse, and the export validator built meanwhile (both take seconds)."""
    with ThreadPoolExecutor(1) as pool:
        building = pool.submit(ExportValidator)
        endpoint = launch_endpoint(tmp_path_factory.mktemp("opendata-warehouse"))
        try:
            writer = client(endpoint, "writer", database=None)
            migrate(writer, endpoint.database, raw_ttl_days=10_000)  # seeded days must not expire
            seed(writer, endpoint.database)
            # the refreshed rollups trail the seed by a refresh; the seed starts a day early
            caught_up = wait_for_rollups(client(endpoint, "writer"), T0 - timedelta(days=1), 60)
            assert caught_up, "the rollups did not catch up with the seeded minutes"
            validator = building.result()
            yield endpoint, validator
        finally:
            endpoint.stop()


@pytest.fixture(scope="module")
def warehouse(prepared: tuple[Endpoint, ExportValidator]) -> Endpoint:
    return prepared[0]


@pytest.fixture(scope="module")
def validator(prepared: tuple[Endpoint, ExportValidator]) -> ExportValidator:
    return prepared[1]


def client(endpoint: Endpoint, role: str, **options: Any) -> Client:
    options.setdefault("database", endpoint.database)
    return clickhouse_connect.get_client(
        host=endpoint.host,
        port=endpoint.port,
        username=role,
        password=endpoint.passwords[role],
        **options,
    )


@pytest.fixture(scope="module")
def opendata(warehouse: Endpoint) -> Client:
    return client(warehouse, "opendata", database="open_data")


@pytest.fixture(scope="module")
def analyst(warehouse: Endpoint) -> Client:
    return client(warehouse, "analyst")


def minute(hour: int, m: int, day: datetime = T0) -> datetime:
    return day + timedelta(hours=hour, minutes=m)


def seed(writer: Client, db: str) -> None:
    """A day of traffic on three registry cameras (and one unknown camera), personal data
    included where the warehouse keeps it."""
    writer.insert(
        f"{db}.dim_camera",
        [[*c, "stream", 4.0, True, True, LOADED] for c in CAMERAS],
        column_names=CAMERA_COLUMNS,
    )
    seed_raw(writer, db)
    seed_density(writer, db)
    seed_crossings(writer, db)
    seed_occupancy(writer, db)
    seed_alerts(writer, db)
    seed_violations_and_events(writer, db)


def seed_raw(writer: Client, db: str) -> None:
    at = minute(14, 3)
    uri = "file:///srv/citycam/frames/hue-le-loi-01/20261122/140300000.jpg"
    writer.insert(
        f"{db}.frames",
        [["hue-le-loi-01", "frame-hue-le-loi-01-1795356180000", at, uri, 768, 576, "ssd", "1",
          at, 2]],
        column_names=["camera_id", "frame_id", "captured_at", "frame_uri", "width", "height",
                      "model_name", "model_version", "inferred_at", "detections"],
    )  # fmt: skip
    writer.insert(
        f"{db}.detections",
        [["hue-le-loi-01", "frame-hue-le-loi-01-1795356180000", at, i, "car", 3, 0.9,
          10.0, 20.0, 110.0, 90.0, 4242 + i, "ssd", "1"] for i in range(2)],
        column_names=["camera_id", "frame_id", "captured_at", "det_index", "class_name",
                      "class_id", "score", "x1", "y1", "x2", "y2", "track_id", "model_name",
                      "model_version"],
    )  # fmt: skip


DENSITY_COLUMNS = ["camera_id", "window_start", "window_end", "vehicle_class", "frames",
                   "detections", "mean_in_view", "max_in_view", "pcu_factor", "pcu",
                   "pcu_version", "emitted_at"]  # fmt: skip
PCU = {"car": 1.0, "motorbike": 0.3, "bus": 3.0}


def density_row(camera: str, start: datetime, cls: str, frames: int, detections: int) -> list[Any]:
    pcu = detections * PCU[cls]
    return [camera, start, start + timedelta(minutes=1), cls, frames, detections,
            detections / frames, max(1, detections // frames + 1), PCU[cls], pcu, "vn-2026",
            start + timedelta(minutes=1)]  # fmt: skip


def seed_density(writer: Client, db: str) -> None:
    rows = []
    for camera, *_ in [*CAMERAS, (GHOST,)]:
        for hour in (13, 14, 15):
            for m in range(0, 50, 7):
                for cls, per_frame in (("car", 3), ("motorbike", 11), ("bus", 1)):
                    start = minute(hour, m)
                    rows.append(density_row(camera, start, cls, 120, 120 * per_frame + m))
                    # an earlier emission of the same window: the rollups keep the final one
                    rows.append(density_row(camera, start, cls, 60, 60 * per_frame))
    # just outside the day, on both sides
    rows.append(density_row("hue-le-loi-01", minute(23, 59, T0 - timedelta(days=1)), "car", 120, 7))
    rows.append(density_row("hue-le-loi-01", minute(0, 0, T0 + timedelta(days=1)), "car", 120, 9))
    writer.insert(f"{db}.traffic_density_1m", rows, column_names=DENSITY_COLUMNS)


CROSSING_COLUMNS = ["camera_id", "line_id", "window_start", "window_end", "direction",
                    "orientation", "vehicle_class", "frames", "crossings", "pcu_factor", "pcu",
                    "pcu_per_hour", "pcu_version", "speed_samples", "speed_kmh_mean",
                    "speed_kmh_p85", "emitted_at"]  # fmt: skip


def crossing_row(
    camera: str, start: datetime, orientation: str, cls: str, frames: int, crossings: int
) -> list[Any]:
    factor = {"car": 1.0, "motorbike": 0.3, "pedestrian": 0.0}[cls]
    direction = {"positive": "eastbound", "negative": "westbound"}[orientation]
    speed = 28.5 if camera == "hue-le-loi-01" and cls != "pedestrian" else None
    return [camera, "footway-west", start, start + timedelta(minutes=1), direction, orientation,
            cls, frames, crossings, factor, crossings * factor, crossings * factor * 60,
            "vn-2026", crossings if speed else 0, speed, speed and speed + 6,
            start + timedelta(minutes=1)]  # fmt: skip


def seed_crossings(writer: Client, db: str) -> None:
    rows = []
    for camera in ("hue-le-loi-01", "hue-dong-ba-01", GHOST):
        for hour in (13, 14):
            for m in range(0, 60, 10):
                for orientation in ("positive", "negative"):
                    for cls, n in (("car", 4), ("motorbike", 9), ("pedestrian", 2)):
                        start = minute(hour, m)
                        rows.append(crossing_row(camera, start, orientation, cls, 240, n + m // 10))
                        rows.append(crossing_row(camera, start, orientation, cls, 100, 1))
    writer.insert(f"{db}.line_crossings_1m", rows, column_names=CROSSING_COLUMNS)


def seed_occupancy(writer: Client, db: str) -> None:
    rows = []
    for hour in (13, 14):
        for m in range(0, 60, 15):
            start = minute(hour, m)
            rows.append(
                ["hue-le-loi-01", "junction", "junction", start, start + timedelta(minutes=1),
                 240, 480 + m, (480 + m) / 240, 5, 200, 200 / 240, 1.4, "vn-2026",
                 {"car": 0.5, "motorbike": 1.5}, start + timedelta(minutes=1)]
            )  # fmt: skip
    writer.insert(
        f"{db}.zone_occupancy_1m",
        rows,
        column_names=["camera_id", "zone_id", "zone_kind", "window_start", "window_end",
                      "frames", "objects", "mean_objects", "max_objects", "occupied_frames",
                      "occupied_share", "mean_pcu", "pcu_version", "mean_objects_by_class",
                      "emitted_at"],
    )  # fmt: skip


def seed_alerts(writer: Client, db: str) -> None:
    columns = [
        "alert_id", "camera_id", "kind", "zone_id", "state", "severity", "started_at",
        "ended_at", "as_of", "metric", "value", "threshold", "baseline", "baseline_std",
        "z_score", "deviation", "occupied_share", "speed_kmh", "speed_threshold_kmh",
        "evidence_frame_id", "evidence_frame_uri", "evidence_captured_at", "emitted_at",
    ]  # fmt: skip
    start = minute(14, 5)
    congestion = "congestion:hue-le-loi-01:junction:20261122T140500Z"
    evidence = "s3://citycam-frames/hue-le-loi-01/20261122/140700000.jpg"
    rows = [
        [congestion, "hue-le-loi-01", "congestion", "junction", "open", "medium", start, None,
         start + timedelta(minutes=3), "mean_pcu", 6.5, 4.0, None, None, None, None, 0.97, 4.5,
         8.0, "frame-hue-le-loi-01-1795356420000", evidence, start, start],
        [congestion, "hue-le-loi-01", "congestion", "junction", "closed", "high", start,
         start + timedelta(minutes=20), start + timedelta(minutes=21), "mean_pcu", 9.1, 4.0,
         None, None, None, None, 1.0, 3.0, 8.0, "frame-hue-le-loi-01-1795356420000", evidence,
         start, start],
        ["abnormal_flow:hue-dong-ba-01:-:20261122T131000Z", "hue-dong-ba-01", "abnormal_flow",
         None, "closed", "low", minute(13, 10), minute(13, 30), minute(13, 31), "pcu_per_hour",
         910.0, 800.0, 520.0, 130.0, 3.0, "above", None, None, None,
         "frame-hue-dong-ba-01-1795353000000", evidence, minute(13, 12), minute(13, 31)],
        [f"congestion:{GHOST}:z:20261122T140000Z", GHOST, "congestion", "z", "open", "low",
         minute(14, 0), None, minute(14, 1), "mean_pcu", 5.0, 4.0, None, None, None, None, 0.9,
         None, None, None, None, None, minute(14, 1)],
    ]  # fmt: skip
    writer.insert(f"{db}.alerts", rows, column_names=columns)


def seed_violations_and_events(writer: Client, db: str) -> None:
    occurred = minute(9, 12)
    writer.insert(
        f"{db}.violations",
        [["v1", "k1", "hue-le-loi-01", "red_light", occurred, "motorbike", 41, "high", 0.9,
          "file:///srv/citycam/frames/hue-le-loi-01/1.jpg", "75A-123.45", "confirmed", "rules",
          "1", occurred],
         ["v2", "k2", "hue-le-loi-01", "red_light", occurred, "car", 42, "medium", 0.8,
          "file:///srv/citycam/frames/hue-le-loi-01/2.jpg", "75B-555.55", "pending", "rules",
          "1", occurred]],
        column_names=["violation_id", "dedup_key", "camera_id", "violation_type", "occurred_at",
                      "vehicle_class", "track_id", "severity", "confidence",
                      "evidence_frame_uri", "plate_text", "review_status", "model_name",
                      "model_version", "updated_at"],
    )  # fmt: skip
    writer.insert(
        f"{db}.environmental_events",
        [["e1", "hue-dong-ba-01", "flood", minute(6, 0), minute(8, 30), 0.8, 35.0, "cm", None,
          "file:///srv/citycam/frames/hue-dong-ba-01/9.jpg", "flood-net", "1", minute(8, 30)]],
        column_names=["event_id", "camera_id", "event_type", "started_at", "ended_at",
                      "confidence", "level", "level_unit", "area_share", "evidence_frame_uri",
                      "model_name", "model_version", "updated_at"],
    )  # fmt: skip


def info_for(target: Any) -> CatalogInfo:
    return CatalogInfo(root_url=target.uri, publisher="Hue city open data")


@pytest.fixture(scope="module")
def day_export(
    opendata: Client, validator: ExportValidator, tmp_path_factory: pytest.TempPathFactory
) -> tuple[LocalTarget, ExportResult]:
    target = LocalTarget(tmp_path_factory.mktemp("open-data"))
    return target, export_period(opendata, DAY, target, info_for(target), validator)


@pytest.fixture(scope="module")
def hour_export(
    opendata: Client, validator: ExportValidator, tmp_path_factory: pytest.TempPathFactory
) -> tuple[LocalTarget, ExportResult]:
    """An hour exported to its own root (tests re-export it and try to break it)."""
    target = LocalTarget(tmp_path_factory.mktemp("open-data-hour"))
    return target, export_period(opendata, HOUR, target, info_for(target), validator)


# ---------------------------------------------------------------------------------------------
# Reading back


def period_dir(target: LocalTarget, period: Period) -> Path:
    return target.root / period.id


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("name", [d.name for d in datasets_for("day")])
def test_day_export_reads_back_as_the_warehouse_has_it(
    name: str, day_export: tuple[LocalTarget, ExportResult], analyst: Client
) -> None:
    target, result = day_export
    folder = period_dir(target, DAY)
    expected = warehouse_rows(analyst, name, DAY)
    assert result.rows[name] == len(expected)
    parquet = pq.read_table(folder / f"{name}.parquet")
    assert parquet.column_names == list(expected.columns)
    assert_same_rows(rows_of(parquet.to_pandas()), rows_of(expected))
    csv = read_csv(folder / f"{name}.csv", expected)
    assert list(csv.columns) == list(expected.columns)
    assert_same_rows(rows_of(csv), rows_of(expected))
    descriptions = {f.name: f.metadata[b"description"].decode() for f in parquet.schema}
    assert all(descriptions.values()), "every Parquet column carries its description"


def test_day_export_holds_the_seeded_figures_and_nothing_of_unknown_cameras(
    day_export: tuple[LocalTarget, ExportResult],
) -> None:
    folder = period_dir(day_export[0], DAY)
    flow = pd.read_parquet(folder / "traffic_flow_hourly.parquet")
    # per minute the final emission (240 frames) wins: n + m // 10 for m = 0, 10, ..., 50
    le_loi_cars = flow[(flow.camera_id == "hue-le-loi-01") & (flow.vehicle_class == "car")]
    assert sorted(le_loi_cars.crossings) == [4 * 6 + 15] * 4  # 2 hours x 2 ways
    density = pd.read_parquet(folder / "traffic_density_daily.parquet")
    cars = density[(density.camera_id == "hue-le-loi-01") & (density.vehicle_class == "car")]
    assert cars.vehicle_detections.tolist() == [3 * sum(360 + m for m in range(0, 50, 7))]
    assert cars.minutes_covered.tolist() == [3 * 8]
    assert len(pd.read_parquet(folder / "cameras.parquet")) == 3
    alerts = pd.read_parquet(folder / "traffic_alerts.parquet")
    assert sorted(alerts.state) == ["closed", "closed"]  # the latest state of each episode
    counts = pd.read_parquet(folder / "violation_counts_daily.parquet")
    assert counts.violations.sum() == 2 and counts.confirmed.sum() == 1
    for path in folder.iterdir():
        assert GHOST not in path.read_bytes().decode("utf-8", "replace"), path.name


def test_no_personal_field_or_value_in_any_published_file(
    day_export: tuple[LocalTarget, ExportResult],
) -> None:
    target, _ = day_export
    forbidden_column = re.compile(r"frame|track|plate|face|evidence|person", re.I)
    files = [p for p in target.root.rglob("*") if p.is_file() and p.name != ".lock"]
    assert len(files) > 10
    for path in files:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            assert not [c for c in table.column_names if forbidden_column.search(c)], path
            text = repr(table.to_pylist()) + repr(table.schema.metadata)
        else:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".csv":
                header = text.splitlines()[0]
                assert not forbidden_column.search(header), (path, header)
        for secret in PERSONAL:
            if path.name != "catalog.jsonld" or secret != "file:///":  # the root's own URL
                assert secret not in text, (path.name, secret)
    geojson = json.loads((period_dir(target, DAY) / "cameras.geojson").read_text())
    for feature in geojson["features"]:
        assert not [k for k in feature["properties"] if forbidden_column.search(k)]
    entities = json.loads((period_dir(target, DAY) / "traffic_flow_observed.jsonld").read_text())
    for entity in entities:
        assert not [k for k in entity if forbidden_column.search(k)]


def test_catalog_parses_as_json_ld_and_describes_every_file(
    day_export: tuple[LocalTarget, ExportResult],
) -> None:
    from rdflib import Graph, Literal, Namespace, URIRef
    from rdflib.namespace import DCAT, DCTERMS, RDF

    spdx = Namespace("http://spdx.org/rdf/terms#")
    in_series = URIRef("http://www.w3.org/ns/dcat#inSeries")  # DCAT 3: not in rdflib's DCAT
    target, result = day_export
    folder = period_dir(target, DAY)
    for catalog_file in (folder / "catalog.jsonld", target.root / "catalog.jsonld"):
        graph = Graph().parse(data=catalog_file.read_text(), format="json-ld")
        assert len(list(graph.subjects(RDF.type, DCAT.Catalog))) == 1
        distributions = set(graph.subjects(RDF.type, DCAT.Distribution))
        published = [p for p in folder.iterdir() if p.name != "catalog.jsonld"]
        assert len(distributions) == len(published) == 2 * len(result.files) + 2
        for path in published:
            url = URIRef(f"{target.uri}/{DAY.id}/{path.name}")
            assert url in distributions, path.name
            assert graph.value(url, DCAT.downloadURL) == url
            assert graph.value(url, DCAT.byteSize).toPython() == path.stat().st_size
            checksum = graph.value(url, spdx.checksum)
            assert str(graph.value(checksum, spdx.checksumValue)) == sha256(path)
            assert graph.value(checksum, spdx.algorithm) == spdx.checksumAlgorithm_sha256
            assert str(graph.value(url, DCAT.mediaType)).startswith(
                "https://www.iana.org/assignments/media-types/"
            )
            assert graph.value(url, DCTERMS.license) == URIRef(
                "https://creativecommons.org/licenses/by/4.0/"
            )
        for dataset in graph.subjects(RDF.type, DCAT.Dataset):
            temporal = graph.value(dataset, DCTERMS.temporal)
            assert graph.value(temporal, DCAT.startDate) == Literal(DAY.start)
            assert graph.value(temporal, DCAT.endDate) == Literal(DAY.end)
            assert graph.value(dataset, DCTERMS.title) and graph.value(dataset, in_series)
            assert list(graph.objects(dataset, DCAT.keyword))


def test_geojson_is_a_feature_collection_of_cameras_with_their_figures(
    day_export: tuple[LocalTarget, ExportResult],
) -> None:
    folder = period_dir(day_export[0], DAY)
    geojson = json.loads((folder / "cameras.geojson").read_text())
    assert geojson["type"] == "FeatureCollection"
    features = {f["id"]: f for f in geojson["features"]}
    assert set(features) == {c[0] for c in CAMERAS}
    for camera_id, _, lat, lon, *_ in CAMERAS:
        geometry = features[camera_id]["geometry"]
        assert geometry == {"type": "Point", "coordinates": [lon, lat]}  # lon, lat (RFC 7946)
    flow = pd.read_parquet(folder / "traffic_flow_hourly.parquet")
    le_loi = features["hue-le-loi-01"]["properties"]
    vehicles = flow[(flow.camera_id == "hue-le-loi-01") & (flow.vehicle_class != "pedestrian")]
    assert le_loi["vehicle_crossings"] == vehicles.crossings.sum() > 0
    assert le_loi["alerts"] == 1 and le_loi["period"] == DAY.id
    assert features["hue-trang-tien-01"]["properties"]["vehicle_crossings"] == 0


def test_ngsi_ld_entities_are_traffic_flow_observed(
    day_export: tuple[LocalTarget, ExportResult],
) -> None:
    folder = period_dir(day_export[0], DAY)
    entities = json.loads((folder / "traffic_flow_observed.jsonld").read_text())
    flow = pd.read_parquet(folder / "traffic_flow_hourly.parquet")
    vehicles = flow[flow.vehicle_class != "pedestrian"]
    assert len(entities) == len(vehicles) > 0
    assert len({e["id"] for e in entities}) == len(entities)
    for entity in entities:
        assert entity["type"] == "TrafficFlowObserved"
        assert entity["id"].startswith("urn:ngsi-ld:TrafficFlowObserved:citycam:")
        assert "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld" in entity["@context"]
        assert entity["intensity"]["type"] == "Property"
        assert entity["vehicleType"]["value"] in {"car", "motorcycle", "bicycle", "bus", "lorry"}
        assert entity["laneDirection"]["value"] in {"forward", "backward"}
        start, end = entity["dateObserved"]["value"].split("/")
        assert datetime.fromisoformat(end) - datetime.fromisoformat(start) == timedelta(hours=1)
        assert entity["location"]["value"]["type"] == "Point"
    le_loi = [e for e in entities if e["source"]["value"] == "hue-le-loi-01"]
    assert all(e["averageVehicleSpeed"]["value"] == pytest.approx(28.5) for e in le_loi)
    assert all(e["refRoadSegment"]["object"] == "urn:ngsi-ld:RoadSegment:le-loi-1" for e in le_loi)
    assert sum(e["intensity"]["value"] for e in entities) == vehicles.crossings.sum()


def test_portal_page_lists_datasets_previews_figures_and_links_every_file(
    day_export: tuple[LocalTarget, ExportResult],
) -> None:
    target, _ = day_export
    html = (target.root / "index.html").read_text()
    assert "<script" not in html
    for dataset in datasets_for("day"):
        assert dataset.title in html
        assert f'href="{DAY.id}/{dataset.name}.csv"' in html
        assert f'href="{DAY.id}/{dataset.name}.parquet"' in html
    for path in period_dir(target, DAY).iterdir():
        if path.name != "catalog.jsonld":
            assert sha256(path) in html, path.name
    assert "Le Loi street crossing" in html and "CC BY 4.0" in html
    latest = html.split('id="latest"', 1)[1].split("</section>", 1)[0]
    busiest = re.findall(r"<tr><td>([^<]+) <span", latest)
    assert busiest[0] in ("Le Loi street crossing", "Dong Ba market")


def test_the_validator_keeps_no_results_after_exports(
    day_export: tuple[LocalTarget, ExportResult], validator: ExportValidator
) -> None:
    """A scheduled exporter runs for months; great-expectations would keep every result."""
    assert day_export[1].files  # the day was validated and published
    assert validator._context.validation_results_store.list_keys() == []


def test_hour_export_cuts_the_hour_and_has_no_daily_datasets(
    hour_export: tuple[LocalTarget, ExportResult], analyst: Client
) -> None:
    target, result = hour_export
    folder = period_dir(target, HOUR)
    assert set(result.files) == {d.name for d in datasets_for("hour")}
    assert not (folder / "traffic_density_daily.csv").exists()
    for name in result.files:
        expected = warehouse_rows(analyst, name, HOUR)
        assert_same_rows(rows_of(pd.read_parquet(folder / f"{name}.parquet")), rows_of(expected))
    hours = pd.read_parquet(folder / "traffic_density_hourly.parquet").hour.unique()
    assert [h.to_pydatetime() for h in hours] == [HOUR.start]
    assert len(pd.read_parquet(folder / "traffic_alerts.parquet")) == 1  # started 14:05


def test_a_quiet_day_exports_empty_tables_with_their_columns(
    opendata: Client, validator: ExportValidator, tmp_path: Path
) -> None:
    quiet = Period.parse("day", "2026-11-20")
    target = LocalTarget(tmp_path / "open-data")
    result = export_period(opendata, quiet, target, info_for(target), validator)
    folder = period_dir(target, quiet)
    assert result.rows["cameras"] == 3
    for dataset in datasets_for("day"):
        if dataset.name != "cameras":
            assert result.rows[dataset.name] == 0
            parquet = pq.read_table(folder / f"{dataset.name}.parquet")
            assert parquet.num_rows == 0 and set(dataset.key) <= set(parquet.column_names)
            header = (folder / f"{dataset.name}.csv").read_text().strip()
            assert header.replace('"', "").split(",") == parquet.column_names
    assert json.loads((folder / "traffic_flow_observed.jsonld").read_text()) == []
    geojson = json.loads((folder / "cameras.geojson").read_text())
    assert {f["properties"]["vehicle_crossings"] for f in geojson["features"]} == {0}


def test_re_export_replaces_the_period_atomically(
    hour_export: tuple[LocalTarget, ExportResult], opendata: Client, validator: ExportValidator
) -> None:
    target, first = hour_export
    link = target.root / HOUR.id
    first_version = link.resolve()
    second = export_period(opendata, HOUR, target, info_for(target), validator)
    assert second.version != first.version
    assert link.is_symlink() and link.resolve() != first_version
    assert first_version.name == first.version
    assert not first_version.exists(), "the old version is removed"
    versions = list((target.root / VERSIONS / HOUR.id).iterdir())
    assert [v.name for v in versions] == [second.version], "no partial or stale versions"
    leftovers = [
        p.name for p in target.root.iterdir() if p.name.startswith(".") and p.name != ".lock"
    ]
    assert leftovers == []
    catalog = json.loads((link / "catalog.jsonld").read_text())
    assert catalog["dcat:version"] == second.version


def test_failing_expectation_publishes_nothing_and_keeps_the_previous_export(
    warehouse: Endpoint,
    hour_export: tuple[LocalTarget, ExportResult],
    opendata: Client,
    validator: ExportValidator,
) -> None:
    target, _ = hour_export
    before = {p.relative_to(target.root): p.read_bytes() for p in target.root.rglob("*.*")}
    writer = client(warehouse, "writer")
    broken = [[*CAMERAS[1][:2], 123.0, *CAMERAS[1][3:], "stream", 4.0, True, True,
               LOADED + timedelta(hours=1)]]  # fmt: skip
    writer.insert("dim_camera", broken, column_names=CAMERA_COLUMNS)  # latitude 123
    try:
        with pytest.raises(ExportRejected) as rejected:
            export_period(opendata, HOUR, target, info_for(target), validator)
    finally:
        fixed = [[*CAMERAS[1], "stream", 4.0, True, True, LOADED + timedelta(hours=2)]]
        writer.insert("dim_camera", fixed, column_names=CAMERA_COLUMNS)
    message = str(rejected.value)
    assert "nothing was published" in message
    assert "cameras: expect_column_values_to_be_between(lat)" in message
    assert "123.0" in message
    after = {p.relative_to(target.root): p.read_bytes() for p in target.root.rglob("*.*")}
    assert after == before


def test_export_to_an_object_store_links_one_complete_version(
    opendata: Client, validator: ExportValidator
) -> None:
    import fsspec

    uri = f"memory://open-data-{time.time_ns()}"
    target = open_target(uri)
    assert isinstance(target, ObjectStoreTarget)
    result = export_period(opendata, HOUR, target, info_for(target), validator)
    fs = fsspec.filesystem("memory")
    root = uri.removeprefix("memory://")
    assert fs.ls(f"/{root}/{HOUR.id}/v", detail=False) == [f"/{root}/{HOUR.id}/v/{result.version}"]
    catalog = json.loads(fs.cat_file(f"/{root}/{HOUR.id}/catalog.jsonld"))
    assert catalog["dcat:version"] == result.version
    for node in catalog["dcat:dataset"]:
        for distribution in node.get("dcat:distribution", []):
            url = distribution["dcat:downloadURL"]["@id"]
            assert url.startswith(f"{uri}/{HOUR.id}/v/{result.version}/")
            data = fs.cat_file(url.removeprefix("memory:/"))
            assert len(data) == int(distribution["dcat:byteSize"]["@value"])
            checksum = distribution["spdx:checksum"]["spdx:checksumValue"]["@value"]
            assert hashlib.sha256(data).hexdigest() == checksum
    with fs.open(f"/{root}/traffic_density_hourly.parquet", "wb") as f:
        f.write(b"not a parquet file")  # stray files at the root are not periods
    assert target.period_ids() == [HOUR.id]
    assert b"Traffic flow per hour" in fs.cat_file(f"/{root}/index.html")


def test_export_refuses_a_client_that_can_read_the_warehouse(
    warehouse: Endpoint, opendata: Client
) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
        opendata.query(f"SELECT count() FROM {warehouse.database}.frames")
    ensure_open_data_only(opendata, warehouse.database)
    for role in ("writer", "analyst"):
        with pytest.raises(NotOpenDataUser):
            ensure_open_data_only(client(warehouse, role), warehouse.database)


def test_cli_exports_as_the_open_data_user(
    warehouse: Endpoint,
    validator: ExportValidator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from citycam.config import get_settings
    from warehouse.opendata import validate

    monkeypatch.setattr(validate, "ExportValidator", lambda: validator)  # built once per module

    environment = {
        "CITYCAM_WAREHOUSE__URL": warehouse.url,
        "CITYCAM_WAREHOUSE__DATABASE": warehouse.database,
        "CITYCAM_WAREHOUSE__OPENDATA_USERNAME": "opendata",
        "CITYCAM_WAREHOUSE__OPENDATA_PASSWORD": warehouse.passwords["opendata"],
        "CITYCAM_WAREHOUSE__USERNAME": "writer",
        "CITYCAM_WAREHOUSE__PASSWORD": warehouse.passwords["writer"],
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    root = tmp_path / "portal"
    base = "https://opendata.example.org/traffic"
    argv = ["export", "--period", "hour", "--date", "2026-11-22", "--hour", "14"]
    assert citycam_main([*argv, "--to", root.as_uri(), "--base-url", base]) == 0
    assert f"{base}/2026-11-22T14/catalog.jsonld" in capsys.readouterr().out
    catalog = json.loads((root / "catalog.jsonld").read_text())
    assert catalog["@id"] == f"{base}/catalog.jsonld"
    assert (root / "2026-11-22T14" / "traffic_flow_observed.jsonld").is_file()

    # credentials that can read the warehouse: refused before anything is read or written
    monkeypatch.setenv("CITYCAM_WAREHOUSE__OPENDATA_USERNAME", "analyst")
    monkeypatch.setenv("CITYCAM_WAREHOUSE__OPENDATA_PASSWORD", warehouse.passwords["analyst"])
    get_settings.cache_clear()
    assert citycam_main([*argv, "--to", str(tmp_path / "refused")]) == 1
    assert "exports run as the open-data user only" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    get_settings.cache_clear()

"""The dashboards bundle is consistent, reads only what planners may read, and its SQL runs.

These checks need no Superset: references between bundle files, the datasets' sources, and
every dataset's SQL run as the read-only analyst against a real, migrated warehouse endpoint.
The browser test (tests/integration/test_dashboards.py) renders the dashboards themselves.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import clickhouse_connect
import pytest
import yaml
from pydantic import SecretStr

from citycam.config import WarehouseSettings
from dashboards.bundle import ROOT_FOLDER, read_bundle, render_bundle, warehouse_uri
from tests.warehouse.conftest import Endpoint, launch_endpoint
from warehouse.migrate import migrate

BUNDLE = {f.path: f.content for f in read_bundle()}
DATASETS = {str(c["uuid"]): c for p, c in BUNDLE.items() if p.startswith("datasets/")}
CHARTS = {str(c["uuid"]): c for p, c in BUNDLE.items() if p.startswith("charts/")}
DASHBOARDS = {str(c["uuid"]): c for p, c in BUNDLE.items() if p.startswith("dashboards/")}
DATABASES = {str(c["uuid"]): c for p, c in BUNDLE.items() if p.startswith("databases/")}
# Rollups, facts at minute grain, alerts, health and dimensions: never raw detections/frames.
ALLOWED_SOURCES = {
    "traffic_density_1m_latest",
    "traffic_density_1h",
    "traffic_density_1d",
    "line_crossings_1h",
    "alerts",
    "camera_health_1m",
    "dim_camera",
}


def test_every_object_has_a_distinct_fixed_uuid() -> None:
    uuids = [str(content["uuid"]) for content in BUNDLE.values() if "uuid" in content]
    assert len(uuids) == len(set(uuids)) == len(BUNDLE) - 1  # all but metadata.yaml
    assert BUNDLE["metadata.yaml"]["type"] == "assets"


def test_the_three_planner_dashboards_exist() -> None:
    titles = {d["dashboard_title"] for d in DASHBOARDS.values()}
    assert titles == {"Traffic density", "Traffic alerts", "Camera health"}


def test_references_resolve() -> None:
    for dataset in DATASETS.values():
        assert str(dataset["database_uuid"]) in DATABASES
    for chart in CHARTS.values():
        assert str(chart["dataset_uuid"]) in DATASETS, chart["slice_name"]
        assert chart["params"]["datasource"] == f"{chart['dataset_uuid']}__table"
    for dashboard in DASHBOARDS.values():
        placed = [v["meta"] for k, v in dashboard["position"].items() if k.startswith("CHART-")]
        assert {str(m["uuid"]) for m in placed} <= set(CHARTS), dashboard["dashboard_title"]
        assert len({m["chartId"] for m in placed}) == len(placed)  # import maps ids by these
        for native_filter in dashboard["metadata"]["native_filter_configuration"]:
            for target in native_filter["targets"]:
                dataset = DATASETS[str(target["datasetUuid"])]
                assert target["column"]["name"] in column_names(dataset)


def test_every_chart_is_on_a_dashboard() -> None:
    placed = {
        str(v["meta"]["uuid"])
        for d in DASHBOARDS.values()
        for k, v in d["position"].items()
        if k.startswith("CHART-")
    }
    assert placed == set(CHARTS)


def test_charts_use_columns_and_metrics_their_dataset_has() -> None:
    for chart in CHARTS.values():
        dataset = DATASETS[str(chart["dataset_uuid"])]
        columns, metrics = column_names(dataset), {m["metric_name"] for m in dataset["metrics"]}
        used_columns, used_metrics = chart_references(chart["params"])
        assert used_columns <= columns, (chart["slice_name"], used_columns - columns)
        assert used_metrics <= metrics, (chart["slice_name"], used_metrics - metrics)


def test_every_dashboard_filters_by_district_and_every_dataset_has_it() -> None:
    for dashboard in DASHBOARDS.values():
        names = {f["name"] for f in dashboard["metadata"]["native_filter_configuration"]}
        assert "District" in names
    for dataset in DATASETS.values():
        assert "district" in column_names(dataset), dataset["table_name"]


def test_datasets_read_rollups_facts_and_dimensions_only() -> None:
    for dataset in DATASETS.values():
        sources = set(re.findall(r"\bcitycam\.(\w+)", dataset["sql"]))
        assert sources, dataset["table_name"]
        assert sources <= ALLOWED_SOURCES, (dataset["table_name"], sources - ALLOWED_SOURCES)


def test_rendered_bundle_points_at_the_warehouse_without_its_password() -> None:
    warehouse = WarehouseSettings(
        url="https://warehouse.city.example:9443",
        database="hue",
        analyst_username="planner@hue",
        analyst_password=SecretStr("s3cret-analyst"),
    )
    archive = zipfile.ZipFile(io.BytesIO(render_bundle(warehouse)))
    assert all(name.startswith(f"{ROOT_FOLDER}/") for name in archive.namelist())
    texts = {name: archive.read(name).decode() for name in archive.namelist()}
    assert not any("s3cret-analyst" in text for text in texts.values())
    database = yaml.safe_load(texts[f"{ROOT_FOLDER}/databases/citycam_warehouse.yaml"])
    assert database["sqlalchemy_uri"] == (
        "clickhousedb://planner%40hue:XXXXXXXXXX@warehouse.city.example:9443/hue?secure=true"
    )
    assert warehouse_uri(WarehouseSettings()).startswith("clickhousedb://citycam_analyst:")
    for name, text in texts.items():
        if "/datasets/" in name:
            dataset = yaml.safe_load(text)
            assert dataset["schema"] == "hue"
            assert "citycam." not in dataset["sql"] and "hue.dim_camera" in dataset["sql"]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    endpoint = launch_endpoint(tmp_path_factory.mktemp("dashboards"), database="citycam")
    writer = clickhouse_connect.get_client(
        host=endpoint.host, port=endpoint.port, username="writer",
        password=endpoint.passwords["writer"],
    )  # fmt: skip
    migrate(writer, "citycam", 7)
    yield endpoint
    endpoint.stop()


def test_every_dataset_query_runs_as_the_analyst(warehouse: Endpoint) -> None:
    analyst = clickhouse_connect.get_client(
        host=warehouse.host, port=warehouse.port, username="analyst",
        password=warehouse.passwords["analyst"], database="citycam",
    )  # fmt: skip
    for dataset in DATASETS.values():
        analyst.query(f"SELECT * FROM ({dataset['sql']}) LIMIT 1")
        described = analyst.query(f"DESCRIBE ({dataset['sql']})").result_rows
        assert {row[0] for row in described} == column_names(dataset), dataset["table_name"]


def column_names(dataset: dict[str, Any]) -> set[str]:
    return {c["column_name"] for c in dataset["columns"]}


def chart_references(params: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Columns and saved metrics a chart's form data names."""
    columns: set[str] = set()
    for key in ("groupby", "all_columns"):
        columns.update(params.get(key) or [])
    for key in ("x_axis", "dimension"):
        if params.get(key):
            columns.add(params[key])
    columns.update(f["subject"] for f in params.get("adhoc_filters", []))
    if "spatial" in params:
        columns.update((params["spatial"]["latCol"], params["spatial"]["lonCol"]))
    columns.update(params.get("js_columns") or [])
    metrics = set(params.get("metrics") or [])
    for key in ("metric", "timeseries_limit_metric", "x_axis_sort"):
        if params.get(key):
            metrics.add(params[key])
    return columns, metrics


def test_chart_references_reads_form_data() -> None:
    params = {
        "groupby": ["camera_name"],
        "x_axis": "window_start",
        "metrics": ["pcu_in_view"],
        "adhoc_filters": [{"subject": "window_start"}],
        "spatial": {"latCol": "lat", "lonCol": "lon"},
    }
    assert chart_references(params) == (
        {"camera_name", "window_start", "lat", "lon"},
        {"pcu_in_view"},
    )

"""The planners' dashboards in a real browser, on a warehouse the real pipeline filled.

Superset runs from its own venv (`make superset`) against the pipeline run shared by the
integration tests, as the read-only analyst. Debian's chromium (driven by Playwright, which
never downloads a browser here) opens every dashboard of the bundle; the test fails on any
chart error, any failed request to Superset, and any chart query that errors. Screenshots are
kept as artifacts in .data/test-artifacts/dashboards/ (or $CITYCAM_TEST_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from citycam.cli import load_registry_dimensions
from citycam.clickhouse import connect
from citycam.config import Settings
from citycam.kafka import EventProducer
from dashboards.bundle import BUNDLE_DIR, SupersetClient, import_dashboards, read_bundle
from dashboards.serve import RunningDashboards, start_dashboards
from dashboards.superset import SupersetLogin
from schemas import ALERTS_TOPIC, TrafficAlert
from tests.integration.pipeline import Pipeline, wait_for_warehouse

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    *("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
]
CHART_TIMEOUT_MS = 120_000


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("CITYCAM_TEST_ARTIFACTS", REPO / ".data" / "test-artifacts"))
    return folder / "dashboards"


@dataclass
class Deployed:
    settings: Settings
    login: SupersetLogin


@pytest.fixture(scope="module")
def superset(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """Superset with the bundle imported, on the pipeline's warehouse once it has settled."""
    wait_for_warehouse(pipeline)
    # As `citycam warehouse load-dimensions` (the demo runs it): cameras' names and districts.
    load_registry_dimensions(pipeline.settings, pipeline.settings.cameras_file)
    publish_alerts(pipeline.settings)
    saved = dict(os.environ)
    os.environ["CITYCAM_SUPERSET__DATA_DIR"] = str(tmp_path_factory.mktemp("superset"))
    os.environ["CITYCAM_SUPERSET__VENV"] = str(REPO / ".venv-superset")
    running: RunningDashboards | None = None
    try:
        settings = Settings()
        running = start_dashboards(settings)
        yield Deployed(settings, running.login)
    finally:
        if running is not None:
            running.stop()
        os.environ.clear()
        os.environ.update(saved)


def publish_alerts(settings: Settings) -> None:
    """Two congestion episodes on the alerts topic, as the alerts job would publish them (the
    short clips raise none), loaded by the pipeline's real sink."""
    example = json.loads((REPO / "schemas/examples/traffic_alert-1-0-0.json").read_text())
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    producer = EventProducer(settings.kafka, client_id="test-alerts")
    for camera, zone, started, closed in (
        ("crossing-vtest", "junction", now - timedelta(minutes=50), True),
        ("street-bikes", "street", now - timedelta(minutes=20), False),
    ):
        as_of = started + timedelta(minutes=15 if closed else 5)
        alert = TrafficAlert.model_validate(
            {
                **example,
                "alert_id": f"congestion:{camera}:{zone}:{started:%Y%m%dT%H%M%SZ}",
                **{"camera_id": camera, "zone_id": zone, "evidence": None},
                **{"started_at": started, "as_of": as_of, "emitted_at": as_of},
                "state": "closed" if closed else "open",
                "ended_at": started + timedelta(minutes=10) if closed else None,
            }
        )
        producer.publish(ALERTS_TOPIC, camera, alert)
    producer.flush()
    client = connect(settings.warehouse)
    deadline = time.monotonic() + 60
    while client.command("SELECT count() FROM alerts FINAL") != 2:
        assert time.monotonic() < deadline, "the sink did not load the alerts"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def client(superset: Deployed) -> SupersetClient:
    return SupersetClient(superset.login)


def bundle_titles(kind: str, key: str) -> dict[str, str]:
    return {
        str(f.content["uuid"]): f.content[key]
        for f in read_bundle()
        if f.path.startswith(f"{kind}/")
    }


def listed(client: SupersetClient, resource: str, column: str) -> dict[str, str]:
    result = client.get(f"/api/v1/{resource}/", page_size=100, columns=["uuid", column])["result"]
    return {str(item["uuid"]): item[column] for item in result}


def test_bundle_is_imported_with_its_fixed_uuids(client: SupersetClient) -> None:
    assert listed(client, "dashboard", "dashboard_title") == bundle_titles(
        "dashboards", "dashboard_title"
    )
    assert listed(client, "chart", "slice_name") == bundle_titles("charts", "slice_name")
    assert listed(client, "dataset", "table_name") == bundle_titles("datasets", "table_name")
    databases = client.get("/api/v1/database/", columns=["uuid", "backend"])["result"]
    assert [d["backend"] for d in databases] == ["clickhousedb"]


def test_reimport_after_an_edit_updates_in_place(
    superset: Deployed, client: SupersetClient, tmp_path: Path
) -> None:
    edited = tmp_path / "bundle"
    shutil.copytree(BUNDLE_DIR, edited)
    chart_file = next((edited / "charts").glob("*.yaml"))
    chart = yaml.safe_load(chart_file.read_text())
    chart["slice_name"] = "Edited in the bundle"
    chart_file.write_text(yaml.safe_dump(chart))
    before = listed(client, "chart", "slice_name")
    warehouse = superset.settings.warehouse
    try:
        import_dashboards(superset.login, warehouse, edited)
        after = listed(client, "chart", "slice_name")
        assert after == {**before, str(chart["uuid"]): "Edited in the bundle"}
    finally:
        import_dashboards(superset.login, warehouse)  # back to the committed bundle
    assert listed(client, "chart", "slice_name") == before


@dataclass
class PageWatch:
    """What the browser saw from Superset while a dashboard loaded."""

    base_url: str
    failed_requests: list[str] = field(default_factory=list)
    chart_errors: list[str] = field(default_factory=list)
    chart_rows: list[int] = field(default_factory=list)

    def on_response(self, response: Any) -> None:
        if not response.url.startswith(self.base_url):
            return
        if response.status >= 400:
            self.failed_requests.append(f"{response.status} {response.url}")
        elif "/api/v1/chart/data" in response.url or "/explore_json/" in response.url:
            for result in response.json().get("result", []):
                if result.get("error"):
                    self.chart_errors.append(str(result["error"]))
                self.chart_rows.append(int(result.get("rowcount") or 0))

    def on_request_failed(self, request: Any) -> None:
        # ERR_ABORTED is the browser cancelling its own request (navigation), not a failure.
        if request.url.startswith(self.base_url) and request.failure != "net::ERR_ABORTED":
            self.failed_requests.append(f"{request.failure} {request.url}")


def test_every_dashboard_renders_in_chromium(superset: Deployed) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: `make browser` installs it"
    base_url = superset.login.url
    dashboards = [f.content for f in read_bundle() if f.path.startswith("dashboards/")]
    shots = artifacts_dir()
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1600, "height": 1200})
        # Nothing leaves the machine: map tiles and the bundle's telemetry ping are refused.
        context.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(base_url) else route.abort()
            ),
        )
        page = context.new_page()
        log_in(page, superset.login)
        seen = {}
        for dashboard in dashboards:
            watch = PageWatch(base_url)
            page.on("response", watch.on_response)
            page.on("requestfailed", watch.on_request_failed)
            page.goto(f"{base_url}/superset/dashboard/{dashboard['slug']}/")
            charts_on_page = wait_for_charts(page, dashboard)
            page.screenshot(path=str(shots / f"{dashboard['slug']}.png"), full_page=True)
            page.remove_listener("response", watch.on_response)
            page.remove_listener("requestfailed", watch.on_request_failed)
            seen[dashboard["slug"]] = (watch, charts_on_page)
        browser.close()
    for slug, (watch, charts_on_page) in seen.items():
        assert not watch.failed_requests, f"{slug}: failed requests {watch.failed_requests}"
        assert not watch.chart_errors, f"{slug}: chart errors {watch.chart_errors}"
        assert len(watch.chart_rows) >= charts_on_page, f"{slug}: not every chart queried"
    # The pipeline filled the density, health and alert tables: no chart is left empty.
    for slug, (watch, _) in seen.items():
        assert all(rows > 0 for rows in watch.chart_rows), (slug, watch.chart_rows)


def log_in(page: Any, login: SupersetLogin, attempts: int = 3) -> None:
    """Superset's login form is drawn by React. Once, under load, the form came back after
    submit, as if the fields had been filled before it mounted: so fill it once the page has
    settled, and submit again if it does come back. A login that never works still fails."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(attempts):
        page.goto(f"{login.url}/login/", wait_until="networkidle")
        page.fill("input#username", login.username)
        page.fill("input#password", login.password)
        page.click("button[type=submit]")
        try:
            page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"could not log in to Superset as {login.username} in {attempts} tries")


def wait_for_charts(page: Any, dashboard: dict[str, Any]) -> int:
    """Wait until every chart of the dashboard has rendered; fail on any chart error shown."""
    expected = sum(1 for key in dashboard["position"] if key.startswith("CHART-"))
    page.wait_for_function(
        "n => document.querySelectorAll('.dashboard-chart').length >= n",
        arg=expected,
        timeout=CHART_TIMEOUT_MS,
    )
    page.wait_for_function(
        "() => document.querySelectorAll('.dashboard-chart .loading').length === 0",
        timeout=CHART_TIMEOUT_MS,
    )
    page.wait_for_load_state("networkidle", timeout=CHART_TIMEOUT_MS)
    time.sleep(1)  # let the charts paint after their data arrived, for the screenshot
    errors = page.locator(
        ".dashboard-chart [data-test='error-tooltip'], .dashboard-chart .ant-alert-error"
    )
    assert errors.count() == 0, f"{dashboard['slug']}: {errors.all_inner_texts()}"
    return expected

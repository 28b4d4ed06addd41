"""`citycam export`: publish one UTC day or hour of open data, all or nothing.

1. Read every dataset of the period from the `open_data` views, as the open-data user (a
   client that can read the warehouse itself is refused).
2. Validate: the personal-data check and each dataset's great-expectations suite. Any failure
   raises ExportRejected naming the dataset, the check and what was found; nothing is written.
3. Write the files into a local staging folder: CSV and Parquet per dataset, cameras.geojson,
   traffic_flow_observed.jsonld (NGSI-LD), then scan the written text for frame references and
   measure every file (size, SHA-256) for the period's DCAT-AP catalog.jsonld.
4. Publish atomically to the target (see publish.py), then rewrite the root catalog.jsonld
   (every period) and index.html.
"""

from __future__ import annotations

import json
import logging
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from warehouse.opendata import geo, ngsi_ld, privacy
from warehouse.opendata.catalog import (
    CSV,
    GEOJSON,
    NGSI_LD,
    PARQUET,
    CatalogInfo,
    DatasetFiles,
    PublishedFile,
    period_catalog,
    root_catalog,
)
from warehouse.opendata.datasets import datasets_for
from warehouse.opendata.periods import Period
from warehouse.opendata.portal import busiest_cameras, render_index
from warehouse.opendata.publish import CATALOG, Target
from warehouse.opendata.tables import Extract, read_dataset, write_csv, write_parquet
from warehouse.opendata.validate import ExportRejected, ExportValidator, Failure, period_parameters

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

GEOJSON_FILE = "cameras.geojson"
NGSI_LD_FILE = "traffic_flow_observed.jsonld"
INDEX_FILE = "index.html"


class NotOpenDataUser(PermissionError):
    """The export was given a client that can read more than open_data."""


@dataclass(frozen=True)
class ExportResult:
    period: Period
    version: str
    files: dict[str, tuple[PublishedFile, ...]]  # dataset -> its files
    catalog_url: str
    rows: dict[str, int] = field(default_factory=dict)


def ensure_open_data_only(client: Client, warehouse_database: str) -> None:
    """Refuse a client that can read the warehouse: exports run as the open-data user only."""
    try:
        client.query(f"SELECT 1 FROM `{warehouse_database}`.schema_migrations LIMIT 0")
    except OperationalError:
        raise  # the warehouse did not answer: no verdict
    except DatabaseError:
        return  # refused (or absent): this user sees no more than open_data
    raise NotOpenDataUser(
        f"these credentials can read {warehouse_database}.schema_migrations: exports run as "
        "the open-data user only (CITYCAM_WAREHOUSE__OPENDATA_USERNAME / __OPENDATA_PASSWORD)"
    )


def export_period(
    client: Client,
    period: Period,
    target: Target,
    info: CatalogInfo,
    validator: ExportValidator,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExportResult:
    """Export, validate and publish one period; ExportRejected (nothing published) on failure."""
    extracts = {d.name: read_dataset(client, d, period) for d in datasets_for(period.kind)}
    frames = {name: e.table.to_pandas() for name, e in extracts.items()}
    failures = _check(extracts, frames, period, validator)
    if failures:
        raise ExportRejected(period.id, failures)
    issued = clock()
    version = f"{issued:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"

    def file_url(name: str) -> str:
        return info.url(target.relative_path(period.id, version, name))

    with tempfile.TemporaryDirectory(prefix="citycam-export-") as folder:
        staging = Path(folder)
        written = _write_files(staging, extracts, frames, period)
        failures = _scan_written(staging, written)
        if failures:
            raise ExportRejected(period.id, failures)
        catalog = period_catalog(
            info, period, written, file_url, version, issued, _bbox(frames["cameras"])
        )
        (staging / CATALOG).write_text(_json(catalog))
        with target.lock():
            target.publish_period(period.id, version, staging)
            refresh_root(target, info, clock())
    log.info("published %s version %s to %s", period.id, version, target.uri)
    return ExportResult(
        period=period,
        version=version,
        files={w.dataset.name: w.files for w in written},
        catalog_url=info.url(f"{period.id}/{CATALOG}"),
        rows={name: len(frame) for name, frame in frames.items()},
    )


def refresh_root(target: Target, info: CatalogInfo, modified: datetime) -> None:
    """Rewrite the root catalog and index.html from the published periods' catalogs."""
    periods = [Period.from_id(p) for p in target.period_ids()]
    periods.sort(key=lambda p: (p.end, p.end - p.start), reverse=True)  # newest first
    catalogs = [c for p in periods if (c := target.read_period_catalog(p.id)) is not None]
    catalog = root_catalog(info, catalogs, modified)
    target.write_root_file(CATALOG, _json(catalog, compact=True).encode())
    preview: list[dict[str, Any]] = []
    latest = periods[0] if periods else None
    if latest is not None:
        data = target.read_file(latest.id, GEOJSON_FILE)
        preview = busiest_cameras(json.loads(data)) if data else []
    html = render_index(catalog, preview, latest.label if latest else None)
    target.write_root_file(INDEX_FILE, html.encode())


def _check(
    extracts: dict[str, Extract],
    frames: dict[str, pd.DataFrame],
    period: Period,
    validator: ExportValidator,
) -> list[Failure]:
    parameters = period_parameters(period)
    failures: list[Failure] = []
    for name, frame in frames.items():
        columns = [c.name for c in extracts[name].columns]
        text = {c: frame[c].tolist() for c in frame.columns}
        for finding in privacy.scan_columns(name, columns) + privacy.scan_values(name, text):
            failures.append(Failure(finding.dataset, finding.check, finding.detail))
        failures.extend(validator.validate(name, frame, parameters))
    return failures


def _write_files(
    staging: Path,
    extracts: dict[str, Extract],
    frames: dict[str, pd.DataFrame],
    period: Period,
) -> list[DatasetFiles]:
    written = []
    for name, extract in extracts.items():
        rows = extract.table.num_rows
        write_csv(extract, staging / f"{name}.csv")
        write_parquet(extract, staging / f"{name}.parquet")
        files = [
            PublishedFile.measure(staging / f"{name}.csv", CSV, rows),
            PublishedFile.measure(staging / f"{name}.parquet", PARQUET, rows),
        ]
        if name == "cameras":
            figures = geo.camera_figures(
                frames["traffic_density_hourly"],
                frames["traffic_flow_hourly"],
                frames["traffic_alerts"],
            )
            document = geo.cameras_geojson(frames["cameras"], figures, period)
            (staging / GEOJSON_FILE).write_text(_json(document))
            files.append(PublishedFile.measure(staging / GEOJSON_FILE, GEOJSON, rows))
        if name == "traffic_flow_hourly":
            entities = ngsi_ld.traffic_flow_entities(frames[name])
            (staging / NGSI_LD_FILE).write_text(_json(entities))
            files.append(PublishedFile.measure(staging / NGSI_LD_FILE, NGSI_LD, len(entities)))
        written.append(DatasetFiles(extract.dataset, extract.columns, tuple(files)))
    return written


def _scan_written(staging: Path, written: list[DatasetFiles]) -> list[Failure]:
    """The text files as written (CSV, GeoJSON, NGSI-LD): no frame reference may be in them."""
    failures = []
    for export in written:
        for file in export.files:
            if file.format is PARQUET:
                continue  # binary; its values were scanned before writing
            text = (staging / file.name).read_text(encoding="utf-8")
            for finding in privacy.scan_text(file.name, text):
                failures.append(Failure(finding.dataset, finding.check, finding.detail))
    return failures


def _bbox(cameras: pd.DataFrame) -> tuple[float, float, float, float] | None:
    if cameras.empty:
        return None
    return (
        float(cameras["lon"].min()),
        float(cameras["lat"].min()),
        float(cameras["lon"].max()),
        float(cameras["lat"].max()),
    )


def _json(document: Any, compact: bool = False) -> str:
    """UTF-8 JSON; `compact` for the root catalog, which lists every period."""
    if compact:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"

"""The DCAT-AP catalog of the exports, as JSON-LD.

Each period folder has a `catalog.jsonld` describing its files; the root `catalog.jsonld`
merges every period's. The model (DCAT-AP 3):

- `dcat:Catalog`: title, publisher, homepage (the portal page), `dcat:dataset`;
- one `dcat:DatasetSeries` per dataset (traffic_density_hourly, ...), and one `dcat:Dataset`
  per dataset and period, `dcat:inSeries` its series, with `dct:temporal` (a
  `dct:PeriodOfTime`, `dcat:startDate` inclusive, `dcat:endDate` exclusive, UTC),
  `dct:spatial` (the cameras' bounding box), keywords, theme TRAN and `dcat:version` (the
  export version);
- one `dcat:Distribution` per file: `dcat:downloadURL` and `dcat:accessURL`, `dcat:mediaType`
  (IANA URI), `dct:format` (EU file type), `dct:license`, `dcat:byteSize` and
  `spdx:checksum` (SHA-256), CSV distributions with their columns as a `csvw:tableSchema`.

The `@context` is inline (prefixes only), so the catalog parses as JSON-LD offline.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from warehouse.opendata.datasets import Dataset
from warehouse.opendata.periods import Period
from warehouse.opendata.tables import Column

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "spdx": "http://spdx.org/rdf/terms#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "csvw": "http://www.w3.org/ns/csvw#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
}
CC_BY_4 = "https://creativecommons.org/licenses/by/4.0/"
LICENCE_NAMES = {
    CC_BY_4: "CC BY 4.0",
    "http://publications.europa.eu/resource/authority/licence/CC_BY_4_0": "CC BY 4.0",
    "https://creativecommons.org/publicdomain/zero/1.0/": "CC0 1.0",
    "http://publications.europa.eu/resource/authority/licence/CC0": "CC0 1.0",
    "https://opendatacommons.org/licenses/odbl/1-0/": "ODbL 1.0",
}
THEME_TRANSPORT = "http://publications.europa.eu/resource/authority/data-theme/TRAN"
_XSD_TYPES = (  # prefixes of ClickHouse types, most specific first
    ("DateTime", "dateTime"),
    ("Date", "date"),
    ("UInt", "nonNegativeInteger"),
    ("Int", "integer"),
    ("Float", "double"),
    ("Decimal", "decimal"),
    ("Bool", "boolean"),
)
IANA = "https://www.iana.org/assignments/media-types/"
FILE_TYPE = "http://publications.europa.eu/resource/authority/file-type/"


@dataclass(frozen=True)
class FileFormat:
    label: str  # for people
    media_type: str  # IANA
    file_type: str  # EU file-type authority code
    about: str  # the distribution's description; {rows} is its number of rows
    conforms_to: str | None = None


CSV = FileFormat(
    "CSV",
    "text/csv",
    "CSV",
    "{rows} rows; UTF-8, comma separated, a header line, times in ISO 8601 UTC.",
    "https://www.rfc-editor.org/rfc/rfc4180",
)
PARQUET = FileFormat(
    "Parquet",
    "application/vnd.apache.parquet",
    "PARQUET",
    "{rows} rows; typed columns, each with its description.",
)
GEOJSON = FileFormat(
    "GeoJSON",
    "application/geo+json",
    "GEOJSON",
    "{rows} cameras as points (WGS84) with their figures for the period.",
    "https://www.rfc-editor.org/rfc/rfc7946",
)
NGSI_LD = FileFormat(
    "NGSI-LD",
    "application/ld+json",
    "JSON_LD",
    "{rows} TrafficFlowObserved entities (FIWARE Smart Data Models, normalized NGSI-LD).",
    "https://smart-data-models.github.io/dataModel.Transportation/TrafficFlowObserved/schema.json",
)

FORMATS = {f.file_type: f for f in (CSV, PARQUET, GEOJSON, NGSI_LD)}


@dataclass(frozen=True)
class PublishedFile:
    """A file of a period's export, measured on disk before it is published."""

    name: str
    format: FileFormat
    byte_size: int
    sha256: str
    rows: int

    @classmethod
    def measure(cls, path: Path, file_format: FileFormat, rows: int) -> PublishedFile:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return cls(path.name, file_format, path.stat().st_size, digest.hexdigest(), rows)


@dataclass(frozen=True)
class DatasetFiles:
    dataset: Dataset
    columns: tuple[Column, ...]
    files: tuple[PublishedFile, ...]


@dataclass(frozen=True)
class CatalogInfo:
    """Who publishes, under which licence, where the export root is served."""

    root_url: str
    license: str = CC_BY_4
    publisher: str = "citycam"
    title: str = "citycam open traffic data"
    description: str = (
        "Traffic figures measured by the city's cameras: density, flow, zone occupancy, "
        "alerts, violation counts and environmental events, per UTC day and hour. No personal "
        "data: no images, frame references, plates, faces or tracked individuals."
    )

    def url(self, relative: str) -> str:
        return f"{self.root_url.rstrip('/')}/{relative}"


def period_catalog(
    info: CatalogInfo,
    period: Period,
    exports: Iterable[DatasetFiles],
    file_url: Callable[[str], str],
    version: str,
    issued: datetime,
    bbox: tuple[float, float, float, float] | None,
) -> dict[str, Any]:
    """The catalog of one period's export; `file_url(name)` is where a file is downloaded."""
    exports = list(exports)
    datasets = [
        _dataset(info, period, export, file_url, version, issued, bbox) for export in exports
    ]
    series = [_series(info, export.dataset) for export in exports]
    return {
        "@context": CONTEXT,
        "@id": info.url(f"{period.id}/catalog.jsonld"),
        "@type": "dcat:Catalog",
        **_catalog_terms(info, issued),
        "dcat:version": version,
        "dcat:dataset": series + datasets,
    }


def root_catalog(
    info: CatalogInfo, periods: Iterable[dict[str, Any]], modified: datetime
) -> dict[str, Any]:
    """Every period's datasets, each series once, newest periods first."""
    series: dict[str, dict[str, Any]] = {}
    datasets: list[dict[str, Any]] = []
    for catalog in periods:
        for node in catalog.get("dcat:dataset", []):
            if node.get("@type") == "dcat:DatasetSeries":
                series.setdefault(node["@id"], node)
            else:
                datasets.append(node)
    datasets.sort(key=lambda d: d["dct:temporal"]["dcat:startDate"]["@value"], reverse=True)
    datasets = _columns_once_per_series(datasets)
    return {
        "@context": CONTEXT,
        "@id": info.url("catalog.jsonld"),
        "@type": "dcat:Catalog",
        **_catalog_terms(info, modified),
        "dcat:dataset": sorted(series.values(), key=lambda s: s["@id"]) + datasets,
    }


def _columns_once_per_series(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CSV column schema on the newest dataset of each series only: the root catalog
    lists every period, and the columns rarely change (each period's catalog keeps its own)."""
    seen: set[str] = set()
    slimmed = []
    for node in datasets:  # newest first
        series = node["dcat:inSeries"]["@id"]
        if series in seen:
            node = {
                **node,
                "dcat:distribution": [
                    {k: v for k, v in d.items() if k != "csvw:tableSchema"}
                    for d in node["dcat:distribution"]
                ],
            }
        seen.add(series)
        slimmed.append(node)
    return slimmed


def licence_name(uri: str) -> str:
    return LICENCE_NAMES.get(uri, uri)


def _catalog_terms(info: CatalogInfo, modified: datetime) -> dict[str, Any]:
    return {
        "dct:title": info.title,
        "dct:description": info.description,
        "dct:publisher": _publisher(info),
        "dct:license": {"@id": info.license},
        "foaf:homepage": {"@id": info.url("index.html")},
        "dct:modified": _datetime(modified),
    }


def _series(info: CatalogInfo, dataset: Dataset) -> dict[str, Any]:
    return {
        "@id": info.url(f"datasets/{dataset.name}"),
        "@type": "dcat:DatasetSeries",
        "dct:identifier": dataset.name,
        "dct:title": dataset.title,
        "dct:description": dataset.description,
        "dcat:keyword": list(dataset.keywords),
        "dcat:theme": {"@id": THEME_TRANSPORT},
        "dct:publisher": _publisher(info),
    }


def _dataset(
    info: CatalogInfo,
    period: Period,
    export: DatasetFiles,
    file_url: Callable[[str], str],
    version: str,
    issued: datetime,
    bbox: tuple[float, float, float, float] | None,
) -> dict[str, Any]:
    dataset = export.dataset
    node: dict[str, Any] = {
        "@id": info.url(f"{period.id}/{dataset.name}"),
        "@type": "dcat:Dataset",
        "dct:identifier": f"{dataset.name}/{period.id}",
        "dct:title": f"{dataset.title}, {period.label}",
        "dct:description": dataset.description,
        "dcat:keyword": list(dataset.keywords),
        "dcat:theme": {"@id": THEME_TRANSPORT},
        "dct:publisher": _publisher(info),
        "dcat:inSeries": {"@id": info.url(f"datasets/{dataset.name}")},
        "dct:temporal": {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": _datetime(period.start),
            "dcat:endDate": _datetime(period.end),
        },
        "dct:issued": _datetime(issued),
        "dct:modified": _datetime(issued),
        "dcat:version": version,
        "dcat:distribution": [
            _distribution(info, dataset, export.columns, f, file_url(f.name)) for f in export.files
        ],
    }
    if bbox is not None:
        node["dct:spatial"] = {"@type": "dct:Location", "dcat:bbox": _wkt_box(bbox)}
    return node


def _distribution(
    info: CatalogInfo,
    dataset: Dataset,
    columns: tuple[Column, ...],
    file: PublishedFile,
    url: str,
) -> dict[str, Any]:
    fmt = file.format
    node: dict[str, Any] = {
        "@id": url,
        "@type": "dcat:Distribution",
        "dct:title": f"{dataset.title} ({fmt.label})",
        "dct:description": fmt.about.format(rows=file.rows),
        "dcat:downloadURL": {"@id": url},
        "dcat:accessURL": {"@id": url},
        "dcat:mediaType": {"@id": IANA + fmt.media_type},
        "dct:format": {"@id": FILE_TYPE + fmt.file_type},
        "dct:license": {"@id": info.license},
        "dcat:byteSize": {"@value": str(file.byte_size), "@type": "xsd:nonNegativeInteger"},
        "spdx:checksum": {
            "@type": "spdx:Checksum",
            "spdx:algorithm": {"@id": "spdx:checksumAlgorithm_sha256"},
            "spdx:checksumValue": {"@value": file.sha256, "@type": "xsd:hexBinary"},
        },
    }
    if fmt.conforms_to:
        node["dct:conformsTo"] = {"@id": fmt.conforms_to}
    if fmt is CSV:
        node["csvw:tableSchema"] = {
            "@type": "csvw:Schema",
            "csvw:column": [
                {
                    "csvw:name": c.name,
                    "csvw:datatype": _xsd_datatype(c.type),
                    "dct:description": c.description,
                }
                for c in columns
            ],
        }
    return node


def _xsd_datatype(clickhouse_type: str) -> str:
    """The CSVW (XSD) datatype of a ClickHouse column type, e.g. UInt64 -> nonNegativeInteger."""
    base = re.sub(r"^(?:LowCardinality\(|Nullable\()+|\)+$", "", clickhouse_type)
    for prefix, datatype in _XSD_TYPES:
        if base.startswith(prefix):
            return datatype
    return "string"


def _publisher(info: CatalogInfo) -> dict[str, Any]:
    return {"@type": "foaf:Agent", "foaf:name": info.publisher}


def _datetime(moment: datetime) -> dict[str, str]:
    return {"@value": moment.isoformat().replace("+00:00", "Z"), "@type": "xsd:dateTime"}


def _wkt_box(bbox: tuple[float, float, float, float]) -> dict[str, str]:
    west, south, east, north = bbox
    ring = [(west, south), (east, south), (east, north), (west, north), (west, south)]
    points = ", ".join(f"{lon} {lat}" for lon, lat in ring)
    return {"@value": f"POLYGON(({points}))", "@type": "gsp:wktLiteral"}

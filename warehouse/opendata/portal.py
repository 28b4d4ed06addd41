"""`index.html`: the portal page, generated from the root catalog. Plain HTML, no JavaScript.

It lists every dataset series with its description and columns, the latest periods with
download links, sizes and SHA-256 checksums, and a preview of the latest figures: the busiest
cameras of the newest export (from its cameras.geojson). Links under the export root are
relative, so the page works from a web server, an object-store website or a local folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from warehouse.opendata.catalog import FORMATS, licence_name
from warehouse.opendata.datasets import DATASETS
from warehouse.opendata.periods import Period

TEMPLATES = Path(__file__).parent / "templates"
PERIODS_SHOWN = 14  # per dataset; the catalog lists them all
PREVIEW_CAMERAS = 10


def busiest_cameras(geojson: dict[str, Any], limit: int = PREVIEW_CAMERAS) -> list[dict[str, Any]]:
    """The cameras of a cameras.geojson with the most vehicle crossings, then PCU."""
    cameras = [f["properties"] for f in geojson.get("features", [])]
    cameras.sort(key=lambda c: (-c["vehicle_crossings"], -c["pcu"], c["camera_id"]))
    return cameras[:limit]


def render_index(
    catalog: dict[str, Any], preview: Sequence[dict[str, Any]], preview_period: str | None
) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    root = catalog["@id"].rsplit("/", 1)[0] + "/"
    return environment.get_template("index.html.j2").render(
        title=catalog["dct:title"],
        description=catalog["dct:description"],
        publisher=catalog["dct:publisher"]["foaf:name"],
        license=catalog["dct:license"]["@id"],
        license_name=licence_name(catalog["dct:license"]["@id"]),
        modified=catalog["dct:modified"]["@value"],
        catalog_href=_href(catalog["@id"], root),
        preview=preview,
        preview_period=preview_period,
        series_list=_series_list(catalog["dcat:dataset"], root),
    )


def _series_list(nodes: Iterable[dict[str, Any]], root: str) -> list[dict[str, Any]]:
    nodes = list(nodes)
    order = {d.name: i for i, d in enumerate(DATASETS)}
    series = [n for n in nodes if n["@type"] == "dcat:DatasetSeries"]
    series.sort(key=lambda s: (order.get(s["dct:identifier"], len(order)), s["dct:identifier"]))
    listed = []
    for node in series:
        members = [
            n
            for n in nodes
            if n["@type"] == "dcat:Dataset" and n["dcat:inSeries"]["@id"] == node["@id"]
        ]
        members.sort(key=lambda d: d["dct:temporal"]["dcat:startDate"]["@value"], reverse=True)
        listed.append(
            {
                "name": node["dct:identifier"],
                "title": node["dct:title"],
                "description": node["dct:description"],
                "columns": _columns(members[0]) if members else [],
                "datasets": [_dataset(d, root) for d in members[:PERIODS_SHOWN]],
                "more": max(0, len(members) - PERIODS_SHOWN),
            }
        )
    return listed


def _dataset(node: dict[str, Any], root: str) -> dict[str, Any]:
    period = Period.from_id(node["dct:identifier"].split("/", 1)[1])
    return {"period": period.label, "files": [_file(d, root) for d in node["dcat:distribution"]]}


def _file(node: dict[str, Any], root: str) -> dict[str, Any]:
    return {
        "href": _href(node["dcat:downloadURL"]["@id"], root),
        "label": _format_label(node["dct:format"]["@id"]),
        "description": node.get("dct:description", ""),
        "media_type": node["dcat:mediaType"]["@id"].split("media-types/", 1)[-1],
        "size": _size(int(node["dcat:byteSize"]["@value"])),
        "sha256": node["spdx:checksum"]["spdx:checksumValue"]["@value"],
    }


def _columns(node: dict[str, Any]) -> list[dict[str, str]]:
    for distribution in node["dcat:distribution"]:
        schema = distribution.get("csvw:tableSchema")
        if schema:
            return [
                {
                    "name": c["csvw:name"],
                    "datatype": c["csvw:datatype"],
                    "description": c["dct:description"],
                }
                for c in schema["csvw:column"]
            ]
    return []


def _href(url: str, root: str) -> str:
    """Relative under the export root (the page sits at its top), else the URL itself."""
    return url[len(root) :] if url.startswith(root) else url


def _format_label(file_type_uri: str) -> str:
    code = file_type_uri.rsplit("/", 1)[-1]
    known = FORMATS.get(code)
    return known.label if known else code


def _size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    for power, unit in ((1, "kB"), (2, "MB"), (3, "GB")):
        if size < 1000 ** (power + 1) or unit == "GB":
            return f"{size / 1000**power:.1f} {unit}"
    raise AssertionError("unreachable")

"""The dashboards as code: the YAML asset bundle in dashboards/bundle/ and its import.

The bundle is Superset's own export format (metadata.yaml, databases/, datasets/, charts/,
dashboards/) with fixed UUIDs, so an import creates the objects once and every later import
overwrites them in place: edit the YAML, re-import, and the dashboards follow. The warehouse's
address and the analyst's password are not in the files; they are filled in at import time.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import yaml

from citycam.config import WarehouseSettings
from dashboards.superset import SupersetError, SupersetLogin

BUNDLE_DIR = Path(__file__).with_name("bundle")
ROOT_FOLDER = "citycam_dashboards"  # Superset expects every file under one top folder
REQUEST_TIMEOUT_S = 120


def warehouse_uri(warehouse: WarehouseSettings) -> str:
    """SQLAlchemy URI of the warehouse for Superset's ClickHouse driver (clickhouse-connect),
    as the read-only analyst; Superset masks the password, which it receives separately."""
    parts = urlsplit(warehouse.url)
    secure = parts.scheme == "https"
    port = parts.port or (8443 if secure else 8123)
    user = quote(warehouse.analyst_username, safe="")
    query = "?secure=true" if secure else ""
    return f"clickhousedb://{user}:XXXXXXXXXX@{parts.hostname}:{port}/{warehouse.database}{query}"


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative to the bundle root, e.g. charts/busiest.yaml
    content: dict[str, Any]


def read_bundle(bundle_dir: Path = BUNDLE_DIR) -> Iterator[BundleFile]:
    for path in sorted(bundle_dir.rglob("*.yaml")):
        yield BundleFile(path.relative_to(bundle_dir).as_posix(), yaml.safe_load(path.read_text()))


def render_bundle(warehouse: WarehouseSettings, bundle_dir: Path = BUNDLE_DIR) -> bytes:
    """The bundle as the zip Superset imports, pointed at this warehouse and database."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in read_bundle(bundle_dir):
            content = dict(item.content)
            if item.path.startswith("databases/"):
                content["sqlalchemy_uri"] = warehouse_uri(warehouse)
            if item.path.startswith("datasets/"):
                content["schema"] = warehouse.database
                content["sql"] = content["sql"].replace("citycam.", f"{warehouse.database}.")
            archive.writestr(f"{ROOT_FOLDER}/{item.path}", yaml.safe_dump(content, sort_keys=False))
    return buffer.getvalue()


class SupersetClient:
    """Superset's REST API as the admin: JWT for auth plus the session's CSRF token."""

    def __init__(self, login: SupersetLogin):
        self.url = login.url
        self.session = requests.Session()
        response = self.session.post(
            f"{self.url}/api/v1/security/login",
            json={"username": login.username, "password": login.password, "provider": "db"},
            timeout=REQUEST_TIMEOUT_S,
        )
        _check(response, "login")
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        csrf = self.session.get(f"{self.url}/api/v1/security/csrf_token/", timeout=30)
        _check(csrf, "CSRF token")
        self.session.headers.update({"X-CSRFToken": csrf.json()["result"], "Referer": self.url})

    def get(self, path: str, **params: Any) -> Any:
        query = {"q": _rison(params)} if params else None
        response = self.session.get(f"{self.url}{path}", params=query, timeout=REQUEST_TIMEOUT_S)
        _check(response, f"GET {path}")
        return response.json()

    def import_assets(self, bundle: bytes, passwords: dict[str, str]) -> None:
        response = self.session.post(
            f"{self.url}/api/v1/assets/import/",
            files={"bundle": ("citycam_dashboards.zip", bundle, "application/zip")},
            data={"passwords": json.dumps(passwords)},
            timeout=REQUEST_TIMEOUT_S,
        )
        _check(response, "asset import")


def import_dashboards(
    login: SupersetLogin, warehouse: WarehouseSettings, bundle_dir: Path = BUNDLE_DIR
) -> list[dict[str, Any]]:
    """Import (or re-import) the bundle; return the dashboards as Superset lists them."""
    client = SupersetClient(login)
    password = warehouse.analyst_password.get_secret_value()
    databases = [f.path for f in read_bundle(bundle_dir) if f.path.startswith("databases/")]
    client.import_assets(render_bundle(warehouse, bundle_dir), dict.fromkeys(databases, password))
    columns = ["id", "dashboard_title", "slug"]
    listed = client.get("/api/v1/dashboard/", page_size=100, columns=columns)
    return list(listed["result"])


def _rison(params: dict[str, Any]) -> str:
    """Superset's `q` parameter is rison; flat dicts of numbers and string lists suffice here."""

    def value(v: Any) -> str:
        if isinstance(v, list):
            return "!(" + ",".join(value(x) for x in v) + ")"
        if isinstance(v, str):
            return "'" + v.replace("!", "!!").replace("'", "!'") + "'"
        return str(v)

    return "(" + ",".join(f"{k}:{value(v)}" for k, v in params.items()) + ")"


def _check(response: requests.Response, what: str) -> None:
    if response.status_code >= 400:
        raise SupersetError(f"Superset {what}: HTTP {response.status_code}: {response.text[:500]}")

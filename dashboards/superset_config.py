"""Superset configuration for citycam, loaded by Superset itself (SUPERSET_CONFIG_PATH).

It runs inside Superset's own virtual environment, so it uses the standard library only and
takes every secret and location from the environment (set by `dashboards.service`):

- SUPERSET_SECRET_KEY: signs sessions and encrypts the stored warehouse password (required);
- CITYCAM_SUPERSET_METADATA_URI: Superset's metadata database (SQLAlchemy URI);
- CITYCAM_SUPERSET_DATA_DIR: where uploads, caches and the default SQLite metadata live.
"""

from __future__ import annotations

import os
from pathlib import Path

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
DATA_DIR = Path(os.environ.get("CITYCAM_SUPERSET_DATA_DIR", ".data/superset")).resolve()
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "CITYCAM_SUPERSET_METADATA_URI", f"sqlite:///{DATA_DIR / 'superset.db'}"
)
UPLOAD_FOLDER = str(DATA_DIR / "uploads")

# Planners read dashboards; nothing here should reach the internet (closed networks, privacy).
FEATURE_FLAGS = {
    "DASHBOARD_NATIVE_FILTERS": True,
    "DASHBOARD_CROSS_FILTERS": True,
    "ENABLE_TEMPLATE_PROCESSING": False,
    "EMBEDDED_SUPERSET": False,
    "ALERT_REPORTS": False,
}
SCARF_ANALYTICS = False
GLOBAL_ASYNC_QUERIES = False
# Map tiles for deck.gl charts: OpenStreetMap, no API key needed.
MAPBOX_API_KEY = ""
DECKGL_BASE_MAP = [
    ["https://tile.openstreetmap.org/{z}/{x}/{y}.png", "Streets (OSM)"],
]

# One small server per city operations centre: a simple in-process cache is enough.
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 60}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 60}
FILTER_STATE_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 3600}
EXPLORE_FORM_DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 3600}
RATELIMIT_STORAGE_URI = "memory://"

# The dashboards refresh every minute from rollups that trail the stream by seconds.
SUPERSET_WEBSERVER_TIMEOUT = 120
SQLLAB_TIMEOUT = 120
ROW_LIMIT = 50_000

# Served on loopback behind the operations centre's proxy; the CSRF token guards the API.
WTF_CSRF_ENABLED = True
TALISMAN_ENABLED = False
SESSION_COOKIE_SAMESITE = "Lax"

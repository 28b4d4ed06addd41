"""Superset up with the citycam dashboards imported: what `citycam dashboards` and the demo run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from citycam.config import Settings
from citycam.embedded import ManagedProcess
from dashboards.bundle import import_dashboards
from dashboards.superset import Superset, SupersetLogin


@dataclass
class RunningDashboards:
    process: ManagedProcess
    login: SupersetLogin
    dashboards: list[dict[str, Any]]

    def urls(self) -> list[tuple[str, str]]:
        """(title, URL) of every dashboard."""
        return [
            (d["dashboard_title"], f"{self.login.url}/superset/dashboard/{d['slug'] or d['id']}/")
            for d in sorted(self.dashboards, key=lambda d: str(d["dashboard_title"]))
        ]

    def stop(self) -> None:
        self.process.stop()


def start_dashboards(settings: Settings) -> RunningDashboards:
    """Start Superset on loopback and (re-)import the bundle against the configured warehouse."""
    process, login = Superset(settings).start()
    try:
        dashboards = import_dashboards(login, settings.warehouse)
    except Exception:
        process.stop()
        raise
    return RunningDashboards(process, login, dashboards)


def serve_dashboards(settings: Settings, stop: threading.Event, say: Callable[[str], Any]) -> None:
    """Start Superset with the dashboards, tell where they are and the login, serve until
    `stop` is set."""
    running = start_dashboards(settings)
    try:
        for title, url in running.urls():
            say(f"  {title}: {url}")
        say(f"Superset login: {running.login.username} / {running.login.password}")
        stop.wait()
    finally:
        running.stop()

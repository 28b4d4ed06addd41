"""Where exports go, and how a period is replaced atomically.

An export is built and validated in a local staging folder first; only then is it handed to a
target, which makes it visible in one atomic step, so a reader sees the old period or the new
one, never a mix or a half-written file.

Local directory (`--to DIR` or `file:///DIR`):

    DIR/_versions/<period>/<version>/...   the files, written once, never changed
    DIR/<period> -> _versions/<period>/<version>   a symlink, swapped with os.replace

The version folder is written under a hidden name and renamed when complete; the symlink
swap (rename(2)) is the commit; older versions of the period are removed afterwards. Links
and catalog URLs go through `DIR/<period>/`, so they stay valid across re-exports. Root files
(catalog.jsonld, index.html) are written to a temporary name and renamed over the old ones.
A lock file serialises exporters on one machine.

Object stores (any other fsspec URI, e.g. `s3://bucket/open-data`, `memory://x`) have no
rename, so:

    URI/<period>/v/<version>/...   the files, written once, never changed
    URI/<period>/catalog.jsonld    the period's catalog: the commit

The files go under a fresh version prefix; the single PUT of the period's catalog, which
names that version and links its files, commits it; then the root catalog and index.html are
PUT, and older version prefixes deleted. Readers who start from a catalog see one complete
version (an object PUT is atomic). A reader still following links of a catalog fetched before
a re-export may find them gone: re-read the catalog. Run one exporter per target at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from warehouse.opendata.periods import PERIOD_ID

CATALOG = "catalog.jsonld"
VERSIONS = "_versions"


class Target(Protocol):
    uri: str  # the export root as a URI, the default base of download URLs

    def relative_path(self, period_id: str, version: str, name: str) -> str:
        """Where a file of a period's version is, relative to the root (its URL path)."""
        ...

    def publish_period(self, period_id: str, version: str, staging: Path) -> None:
        """Make `staging`'s files the period's published export, atomically."""
        ...

    def period_ids(self) -> list[str]: ...

    def read_period_catalog(self, period_id: str) -> dict[str, Any] | None: ...

    def read_file(self, period_id: str, name: str) -> bytes | None:
        """A file of the period's published version, None if absent."""
        ...

    def write_root_file(self, name: str, data: bytes) -> None:
        """Replace a file at the root (catalog, index.html) atomically."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]: ...


def open_target(to: str) -> Target:
    """A local directory (a path or file:// URI) or an fsspec object-store URI."""
    if "://" not in to:
        return LocalTarget(Path(to))
    if to.startswith("file://"):
        return LocalTarget(Path(unquote(urlparse(to).path)))
    return ObjectStoreTarget(to)


class LocalTarget:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = self.root.as_uri()

    def relative_path(self, period_id: str, version: str, name: str) -> str:
        return f"{period_id}/{name}"  # through the period's symlink: stable across versions

    def publish_period(self, period_id: str, version: str, staging: Path) -> None:
        link = self.root / period_id
        if link.exists() and not link.is_symlink():
            raise FileExistsError(f"{link} is not an export symlink; refusing to replace it")
        versions = self.root / VERSIONS / period_id
        versions.mkdir(parents=True, exist_ok=True)
        partial = versions / f".{version}.partial"
        shutil.copytree(staging, partial)
        partial.chmod(0o755)  # public data; the staging folder was private to this process
        _fsync_tree(partial)
        final = versions / version
        os.rename(partial, final)  # complete before anything links to it
        new_link = self.root / f".{period_id}.{uuid.uuid4().hex}.link"
        os.symlink(Path(VERSIONS) / period_id / version, new_link)
        os.replace(new_link, link)  # the commit: readers see the old version or the new one
        _fsync_dir(self.root)
        for old in versions.iterdir():
            if old.name != version:
                shutil.rmtree(old, ignore_errors=True)

    def period_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_symlink() and PERIOD_ID.match(p.name)
        )

    def read_period_catalog(self, period_id: str) -> dict[str, Any] | None:
        data = self.read_file(period_id, CATALOG)
        return json.loads(data) if data is not None else None

    def read_file(self, period_id: str, name: str) -> bytes | None:
        path = self.root / period_id / name
        return path.read_bytes() if path.is_file() else None

    def write_root_file(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".{name}.{uuid.uuid4().hex}.tmp"
        with temporary.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.root / name)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield


class ObjectStoreTarget:
    def __init__(self, uri: str) -> None:
        from fsspec.core import url_to_fs

        self.uri = uri.rstrip("/")
        self.fs, path = url_to_fs(self.uri)
        self.root = path.rstrip("/")

    def relative_path(self, period_id: str, version: str, name: str) -> str:
        return f"{period_id}/v/{version}/{name}"

    def publish_period(self, period_id: str, version: str, staging: Path) -> None:
        for path in sorted(staging.iterdir()):
            if path.name != CATALOG:
                target = f"{self.root}/{self.relative_path(period_id, version, path.name)}"
                self.fs.put_file(str(path), target)
        # The commit: one PUT of the catalog that names the new version.
        self.fs.pipe_file(f"{self.root}/{period_id}/{CATALOG}", (staging / CATALOG).read_bytes())
        for old in self._versions(period_id):
            if old != version:
                self.fs.rm(f"{self.root}/{period_id}/v/{old}", recursive=True)

    def period_ids(self) -> list[str]:
        found = self.fs.glob(f"{self.root}/*/{CATALOG}")
        names = {str(p).rstrip("/").split("/")[-2] for p in found}
        return sorted(n for n in names if PERIOD_ID.match(n))

    def read_period_catalog(self, period_id: str) -> dict[str, Any] | None:
        path = f"{self.root}/{period_id}/{CATALOG}"
        if not self.fs.exists(path):
            return None
        catalog: dict[str, Any] = json.loads(self.fs.cat_file(path))
        return catalog

    def read_file(self, period_id: str, name: str) -> bytes | None:
        catalog = self.read_period_catalog(period_id)
        if catalog is None:
            return None
        path = f"{self.root}/{self.relative_path(period_id, catalog['dcat:version'], name)}"
        return bytes(self.fs.cat_file(path)) if self.fs.exists(path) else None

    def write_root_file(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{name}", data)  # one PUT: atomic on object stores

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # object stores have no locks: one exporter at a time

    def _versions(self, period_id: str) -> list[str]:
        prefix = f"{self.root}/{period_id}/v"
        if not self.fs.exists(prefix):
            return []
        return [str(p).rstrip("/").split("/")[-1] for p in self.fs.ls(prefix, detail=False)]


def _fsync_tree(folder: Path) -> None:
    """Files on disk before the rename that publishes them (a crash leaves no empty files)."""
    for path in folder.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

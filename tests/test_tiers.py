"""Plain ``pytest`` leaves the slow tiers out and says so; ``--full`` and ``-m`` bring them back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIXED = "tests/test_bench_realism_floor.py"  # a fast test and a slow one, with light imports


def _collect(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", MIXED, *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _collected(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(MIXED + "::")]


@pytest.mark.slow
def test_the_fast_tier_leaves_slow_tests_out_and_full_runs_them():
    fast, full, by_marker = _collect(), _collect("--full"), _collect("-m", "slow")
    assert fast.returncode == full.returncode == by_marker.returncode == 0, fast.stderr + full.stderr
    slow = "test_another_place_is_further_from_the_reference_than_the_reference_from_itself"
    assert not any(slow in line for line in _collected(fast))
    assert any(slow in line for line in _collected(full))
    assert len(_collected(full)) == len(_collected(fast)) + 1
    assert [line for line in _collected(by_marker)] == [line for line in _collected(full) if slow in line]
    assert "1 deselected" in fast.stdout

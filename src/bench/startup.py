"""How long each command takes to answer ``--help``, and ``play_game`` to say there is no display.

Each command runs as a fresh process (``python -m src.scripts.NAME --help``), in rounds: every
command once per round, so that a busy machine slows all of them alike. The table shows the
median and the fastest wall time per command; the JSON has every run.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from src.bench.config import BenchStartupConfig
from src.common.errors import UserError
from src.common.io import report_table_and_json

ROOT = Path(__file__).resolve().parents[2]
NO_DISPLAY = "play_game (no display)"


def all_scripts() -> list[str]:
    return sorted(p.stem for p in (ROOT / "src/scripts").glob("*.py") if p.stem != "__init__")


def _no_display_env() -> dict[str, str]:
    hidden = ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")
    return {key: value for key, value in os.environ.items() if key not in hidden}


def _commands(config: BenchStartupConfig) -> dict[str, tuple[list[str], dict[str, str], int]]:
    """name -> (argv, environment, the exit code it must end with)."""
    scripts = config.scripts or all_scripts()
    unknown = sorted(set(scripts) - set(all_scripts()))
    if unknown:
        raise UserError(
            f"unknown script(s): {', '.join(unknown)}", f"Choose from {', '.join(all_scripts())}."
        )
    commands = {
        f"{name} --help": ([sys.executable, "-m", f"src.scripts.{name}", "--help"], dict(os.environ), 0)
        for name in scripts
    }
    if config.no_display:
        commands[NO_DISPLAY] = ([sys.executable, "-m", "src.scripts.play_game"], _no_display_env(), 2)
    return commands


def time_startups(config: BenchStartupConfig) -> dict:
    commands = _commands(config)
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(config.rounds):
        for name, (argv, env, expected) in commands.items():
            start = time.perf_counter()
            result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
            runs[name].append(time.perf_counter() - start)
            if result.returncode != expected:
                raise RuntimeError(
                    f"{name} exited {result.returncode}, not {expected}: {result.stderr[-500:]}"
                )
    rows = [
        {"command": name, "median_s": statistics.median(times), "min_s": min(times), "runs_s": times}
        for name, times in runs.items()
    ]
    return {
        "measured_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_1min": os.getloadavg()[0]},
        "rounds": config.rounds,
        "target_s": config.target_s,
        "rows": rows,
    }


def format_table(result: dict) -> str:
    lines = [
        "| command | median s | fastest s | under target |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        ok = "yes" if row["median_s"] < result["target_s"] else "**no**"
        lines.append(f"| {row['command']} | {row['median_s']:.2f} | {row['min_s']:.2f} | {ok} |")
    load = result["machine"]["load_1min"]
    lines.append(
        f"\n{result['rounds']} interleaved round(s); {result['machine']['cpus']} CPUs, 1-minute load {load:.1f}"
    )
    return "\n".join(lines)


def run_bench_startup_and_report(config: BenchStartupConfig) -> dict:
    result = time_startups(config)
    return report_table_and_json(format_table(result), result, config.json_out)

"""Benchmark the ride: per-stage milliseconds and end-to-end FPS, raster and neural (table + JSON).

uv run python -m src.scripts.benchmark
uv run python -m src.scripts.benchmark --backends '[ncnn]' --steps '[1]' --soak_game_minutes 10
"""

from __future__ import annotations

from src.bench.bench_play import BenchmarkConfig, run_and_report
from src.common.config import parse_config
from src.common.errors import script_main


@script_main
def main(argv=None) -> None:
    run_and_report(parse_config(BenchmarkConfig, argv, prog="benchmark", description=__doc__.splitlines()[0]))


if __name__ == "__main__":
    main()

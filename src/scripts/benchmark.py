"""Benchmark the ride: per-stage milliseconds and end-to-end FPS, raster and neural (table + JSON).

uv run python -m src.scripts.benchmark
uv run python -m src.scripts.benchmark --backends '[ncnn]' --steps '[1]' --soak_game_minutes 10
"""

from __future__ import annotations

from src.bench.config import BenchmarkConfig
from src.common.config import parse_config
from src.common.errors import script_main
from src.runtime.threads import quiet_thread_pools


@script_main
def main(argv=None) -> None:
    config = parse_config(BenchmarkConfig, argv, prog="benchmark", description=__doc__.splitlines()[0])
    quiet_thread_pools()  # before torch and ncnn start their OpenMP runtimes
    from src.bench.bench_play import run_and_report  # torch, ncnn, moderngl: after parsing

    run_and_report(config)


if __name__ == "__main__":
    main()

"""Time how fast every command answers --help, and play_game's no-display line (target: under 2 s).

uv run python -m src.scripts.bench_startup
uv run python -m src.scripts.bench_startup --scripts play_game train_net --rounds 5
"""

from __future__ import annotations

from src.bench.config import BenchStartupConfig
from src.bench.startup import run_bench_startup_and_report
from src.common.config import parse_config
from src.common.errors import script_main


@script_main
def main(argv=None) -> None:
    run_bench_startup_and_report(
        parse_config(BenchStartupConfig, argv, prog="bench_startup", description=__doc__.splitlines()[0])
    )


if __name__ == "__main__":
    main()

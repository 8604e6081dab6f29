"""Time the game's world step and G-buffer render + readback at several resolutions (headless).

uv run python -m src.scripts.bench_game
uv run python -m src.scripts.bench_game --resolutions '[224x224]' --frames 50 --json_out runs/bench.json
"""

from __future__ import annotations

from src.bench.bench_game import run_bench_game_and_report
from src.bench.config import BenchGameConfig
from src.common.config import parse_config
from src.common.errors import script_main


@script_main
def main(argv=None) -> None:
    run_bench_game_and_report(
        parse_config(BenchGameConfig, argv, prog="bench_game", description=__doc__.splitlines()[0])
    )


if __name__ == "__main__":
    main()

"""KID and SWD of real footage of other places against the real clip game rides are scored on.

uv run python -m src.scripts.bench_realism_floor --reference ../shared/data/real_videos --others data/prepared/cpu_224 --per_video true
uv run python -m src.scripts.bench_realism_floor --reference ../shared/data/real_videos --others data/flythroughs
"""

from __future__ import annotations

from src.bench.config import BenchRealismFloorConfig
from src.common.config import parse_config
from src.common.errors import script_main


@script_main
def main(argv=None) -> None:
    config = parse_config(
        BenchRealismFloorConfig, argv, prog="bench_realism_floor", description=__doc__.splitlines()[0]
    )
    config.check()
    # imported after parsing and checking: it pulls torch, and --help or a refusal should not wait for it
    from src.bench.realism_floor import run_bench_realism_floor_and_report

    run_bench_realism_floor_and_report(config)


if __name__ == "__main__":
    main()

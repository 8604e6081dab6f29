"""The leave-one-clip-out benchmark (src/bench/generalisation.py): for each clip, train the DiT,
the regression baseline and the flat baseline on the others and evaluate them on it.

    uv run python -m src.scripts.bench_generalisation --minutes 30
    uv run python -m src.scripts.bench_generalisation --only highway_ride_udacity_part1 --minutes 30 \
        --train_conf conf/base.yaml conf/cpu_tiny.yaml my_lever.yaml --out runs/generalisation/my_lever
    uv run python -m src.scripts.bench_generalisation --videos a.mp4 b.mp4 --max_steps 200

Prints one table (rows: model per left-out clip; columns: real_psnr, real_ssim, real_swd,
real_seam_ratio, real_warp_error, game_swd_to_real, game_seam_ratio) and writes it to
OUT/results.md beside OUT/results.json. Re-running the same command resumes.
"""

from __future__ import annotations

from src.bench.config import GeneralisationConfig
from src.common.config import parse_config
from src.common.errors import script_main


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(GeneralisationConfig, argv, prog="bench_generalisation", description=__doc__)
    from src.bench.generalisation import run_generalisation  # torch, cv2: after parsing

    run_generalisation(config)


if __name__ == "__main__":
    main()

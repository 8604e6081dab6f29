"""Train the Velodream DiT on a prepared dataset of real street video.

    uv run python -m src.scripts.train_net --conf conf/base.yaml --conf conf/cpu_tiny.yaml
    uv run python -m src.scripts.train_net --conf conf/base.yaml --conf conf/pretrain_lowres.yaml
    accelerate launch --multi_gpu --num_processes 8 -m src.scripts.train_net --conf ...

Re-running the same command resumes the run (runs/<run_name>) from its newest checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from src.common.config import parse_config
from src.common.errors import script_main
from src.common.io import check_writable_dir
from src.game.config import check_level
from src.runtime.threads import quiet_thread_pools
from src.train.config import TrainConfig


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(TrainConfig, argv, prog="train_net", description=__doc__)
    check_level(config.data.game_level, flag="--data.game_level")
    # OpenMP pools that sleep between parallel regions: on a machine doing something else too, a
    # spinning pool made a 2-thread CPU run 5x slower (src/runtime/threads.py)
    quiet_thread_pools()
    # imported here: it pulls accelerate, cv2, diffusers; a script's --help should not wait for that
    from src.train.auto_data import prepare_defaults_if_missing
    from src.train.loop import train

    check_writable_dir(Path(config.runs_dir) / config.run_name, what="--runs_dir")  # before any data is made
    prepare_defaults_if_missing(config)

    run_dir = train(config)
    print(f"run: {run_dir}  package: {run_dir / 'package'}")


if __name__ == "__main__":
    main()

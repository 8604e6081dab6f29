"""Training-data throughput: clips and frames per second from a prepared dataset, with the
training augmentations, for 0, 1, 2... loader workers; and the model's training FLOPs per frame
(src/bench/data_throughput.py). Prints a table and writes JSON.

    uv run python -m src.scripts.bench_data --dataset data/prepared/lowres_224 --out runs/bench_data.json
"""

from __future__ import annotations

from pathlib import Path

from src.bench.config import BenchDataConfig
from src.common.config import parse_config
from src.common.errors import UserError, script_main


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(BenchDataConfig, argv, prog="bench_data", description=__doc__)
    if not (Path(config.dataset) / "manifest.json").is_file():
        raise UserError(
            f"no prepared dataset at {config.dataset}",
            "Prepare one first: python -m src.scripts.prepare_data --videos DIR --out DIR --resolution 224x224 --fps 24.",
        )
    if not config.workers or min(config.workers) < 0 or config.batches < 1:
        raise UserError("--workers needs counts >= 0 and --batches at least 1")
    from src.bench.data_throughput import format_report, run_benchmark  # torch loads after parsing

    print(format_report(run_benchmark(config)))
    print(f"wrote {config.out}")


if __name__ == "__main__":
    main()

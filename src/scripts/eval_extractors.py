"""Measure the real-video extractors against ground truth (game rollouts, aloe stereo disparity).

    uv run python -m src.scripts.eval_extractors --out runs/eval_extractors/extractors.json

Prints a table and writes the full results as JSON.
"""

from __future__ import annotations

from pathlib import Path

from src.bench.config import EvalExtractorsConfig
from src.common.config import parse_config, to_dict
from src.common.errors import script_main
from src.common.io import atomic_write_json


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(EvalExtractorsConfig, argv, prog="eval_extractors", description=__doc__)
    # imported after parsing: it pulls cv2 and the game, and --help should not wait for that
    from src.bench.extractors import evaluate_extractors, format_table

    out = Path(config.out)
    results = evaluate_extractors(config, work_dir=out.parent / "game_clips")
    results["config"] = to_dict(config)
    atomic_write_json(out, results)
    print(format_table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

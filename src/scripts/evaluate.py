"""Score a renderer package on real clips and on a game ride (src/eval/evaluate.py).

    uv run python -m src.scripts.evaluate --checkpoint game/models/default --data data/prepared/default
    uv run python -m src.scripts.evaluate --checkpoint game/models/default \
        --data data/real_videos --split all --out runs/evaluate/road

Writes OUT/metrics.json (a flat JSON object), OUT/run.json, OUT/real.png, OUT/game.png and the
mp4s, and prints the numbers beside the flat-colour input's, the real video's and the raster's.
"""

from __future__ import annotations

from src.common.config import parse_config
from src.common.errors import script_main
from src.eval.config import EvaluateConfig, check_evaluate_config


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(EvaluateConfig, argv, prog="evaluate", description=__doc__)
    check_evaluate_config(config)  # the refusals the arguments alone decide, before torch loads
    from src.eval.evaluate import evaluate  # torch, cv2, diffusers: once the arguments hold

    evaluate(config)


if __name__ == "__main__":
    main()

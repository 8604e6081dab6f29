"""Show real-video and game conditions side by side, and measure their domain gap.

    uv run python -m src.scripts.visualize_conditions --out runs/visualize_conditions

Writes ``conditions.mp4`` (per frame: rows frame | depth | flow | normals | flat colour; real clip
left, game ride right), ``conditions_grid.png`` (the same rows for a few frames),
``histograms.png`` (per encoded channel, real vs game) and ``domain_gap.json`` (1-D Wasserstein
distance per channel; held-out accuracy of a real-vs-game condition classifier per channel group).
Views show the encoded conditions, i.e. what the model sees.
"""

from __future__ import annotations

from pathlib import Path

from src.common.config import parse_config
from src.common.errors import script_main
from src.eval.config import VisualizeConditionsConfig
from src.game.config import check_level


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(VisualizeConditionsConfig, argv, prog="visualize_conditions", description=__doc__)
    check_level(config.game_level, flag="--conf.game_level")
    from src.eval.visualize_conditions import visualize_conditions  # torch, cv2, moderngl: after parsing

    summary = visualize_conditions(config)
    print(f"wrote {Path(config.out)}/conditions.mp4, conditions_grid.png, histograms.png, domain_gap.json")
    for name, value in summary["wasserstein"].items():
        print(f"  {name:10s} W1 = {value:.4f}")
    accuracy = summary["condition_gap_accuracy"]
    print(
        "  condition-gap classifier, held-out accuracy: "
        + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())
    )


if __name__ == "__main__":
    main()

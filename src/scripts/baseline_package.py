"""Write the flat-colour baseline renderer package for a prepared dataset (no training needed).

uv run python -m src.scripts.baseline_package --data data/prepared/default --out runs/flat_color
uv run python -m src.scripts.play_game --checkpoint runs/flat_color
"""

from __future__ import annotations

import dataclasses

from src.common.config import parse_config
from src.common.errors import script_main


@dataclasses.dataclass
class BaselinePackageConfig:
    data: str = "data/prepared/default"
    """the prepared dataset whose statistics, frame size and fps the package takes"""
    out: str = "runs/flat_color"
    """where to write the package"""


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(BaselinePackageConfig, argv, prog="baseline_package", description=__doc__)
    # imported here: it pulls diffusers, torch; a script's --help should not wait for that
    from src.train.package import write_flat_color_package

    print(f"wrote {write_flat_color_package(config.out, dataset=config.data)}")


if __name__ == "__main__":
    main()

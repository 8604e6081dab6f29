"""Turn real still photos into short forward-zooming videos that prepare_data takes like any clip
(src/data/flythrough.py): scenes no training video shows, such as open sky over a country road.

    uv run python -m src.scripts.make_flythroughs --photos mvtb --out data/flythroughs
    uv run python -m src.scripts.make_flythroughs --photos my_photos/ --out data/my_flythroughs --zoom 2
    uv run python -m src.scripts.prepare_data --videos data/flythroughs --out data/prepared/photos

Writes one mp4 per photo, named after it. The mvtb photos are MIT-licensed (mvtb-data, Peter
Corke's Machine Vision Toolbox data); name your own photos' licence where you publish a model.
"""

from __future__ import annotations

from src.common.config import parse_config
from src.common.errors import script_main
from src.data.config import FlythroughConfig


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(FlythroughConfig, argv, prog="make_flythroughs", description=__doc__)
    from src.data.flythrough import make_flythroughs  # cv2 and av: after --help

    written = make_flythroughs(config)
    print(f"wrote {len(written)} fly-through(s) of {config.frames} frames into {config.out}")


if __name__ == "__main__":
    main()

"""Fetch a renderer package into the cache without playing.

uv run python -m src.scripts.download_checkpoint hf://owner/repo
uv run python -m src.scripts.download_checkpoint https://host/model.tar.gz#sha256=...
"""

from __future__ import annotations

import dataclasses

from src.common.config import parse_config
from src.common.errors import UserError, script_main
from src.play.fetch import resolve_checkpoint


@dataclasses.dataclass
class DownloadConfig:
    """``download_checkpoint``: which package to fetch and where to cache it."""

    source: str = ""
    """a package directory, hf://owner/repo[@revision], or https://.../archive.tar.gz#sha256=HEX"""
    cache_dir: str | None = None
    """where downloads go (default: $VELODREAM_CACHE or ~/.cache/velodream)"""


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(
        DownloadConfig, argv, prog="download_checkpoint", description=__doc__, positional=["source"]
    )
    if not config.source:
        raise UserError(
            "no checkpoint source given", "Usage: python -m src.scripts.download_checkpoint SOURCE"
        )
    path = resolve_checkpoint(config.source, cache_dir=config.cache_dir)
    print(path)


if __name__ == "__main__":
    main()

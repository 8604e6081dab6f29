"""Prepare real videos as training data: decode, extract G-buffer channels, write shards + manifest.

    uv run python -m src.scripts.prepare_data --defaults --out data/prepared/default
    uv run python -m src.scripts.prepare_data --videos data/real_videos --out data/prepared/mine \
        --resolution 96x96 --fps 10
    uv run python -m src.scripts.prepare_data --videos dir https://host/ride.mp4 --out data/prepared/mine
    accelerate launch --num_processes 4 -m src.scripts.prepare_data --videos DIR --out OUT   # split videos

A URL is downloaded with yt-dlp into the cache (resumably) and prepared like a file; a folder may
hold *.urls lists (one URL or path a line). --defaults with --videos prepares both. A video or URL that fails is one line; the others go on.

Re-running the same command resumes (finished shards and videos are skipped). Memory does not grow
with a video's length: decoded frames stream to a temporary unnamed file beside the shards (about
150 KB of disk per 224² frame, freed when the video is done) and are read back one shard at a time.
"""

from __future__ import annotations

from src.common.config import parse_config
from src.common.errors import UserError, script_main
from src.data.config import PrepareConfig


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(PrepareConfig, argv, prog="prepare_data", description=__doc__)
    if not config.videos and not config.defaults:
        raise UserError(
            "no videos given", "Pass --videos FILES_OR_FOLDERS, or --defaults for the embedded street clips."
        )
    # imported here: it pulls torch, cv2 and av; a script's --help should not wait for that
    from src.data.prepare import prepare_dataset

    manifest = prepare_dataset(config)
    if manifest is not None:
        totals = manifest["totals"]
        # each skip was printed when it happened (and is listed in the manifest): counted, not repeated
        skipped = f"; skipped {len(manifest['skipped'])} (see above)" if manifest["skipped"] else ""
        print(
            f"prepared {totals['videos']} video(s): {totals['train_frames']} train + {totals['val_frames']} val frames "
            f"at {manifest['resolution'][0]}x{manifest['resolution'][1]}, {manifest['fps']} fps -> {config.out}"
            f"{skipped}"
        )


if __name__ == "__main__":
    main()

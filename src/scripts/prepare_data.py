"""Prepare real videos as training data: decode, extract G-buffer channels, write shards + manifest.

    uv run python -m src.scripts.prepare_data --defaults --out data/prepared/default
    uv run python -m src.scripts.prepare_data --videos data/real_videos --out data/prepared/mine \
        --resolution 96x96 --fps 10
    accelerate launch --num_processes 4 -m src.scripts.prepare_data --videos DIR --out OUT   # split videos

Re-running the same command resumes (finished shards and videos are skipped).
"""

from __future__ import annotations

import json
import sys

from src.common.config import parse_config
from src.common.errors import UserError, script_main
from src.data.prepare import PrepareConfig, prepare_dataset


def _gather_list_flag(argv: list[str], flag: str) -> list[str]:
    """``--videos a b c`` (shell style) -> ``--videos ["a", "b", "c"]`` (what the config parser reads)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in (flag, f"--conf.{flag[2:]}"):
            values = []
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
            if len(values) == 1 and values[0].lstrip().startswith("["):
                out += [argv[i - 2], values[0]]
            else:
                out += [flag, json.dumps(values)]
        else:
            out.append(argv[i])
            i += 1
    return out


@script_main
def main(argv: list[str] | None = None) -> None:
    argv = _gather_list_flag(list(sys.argv[1:] if argv is None else argv), "--videos")
    config = parse_config(PrepareConfig, argv, prog="prepare_data", description=__doc__)
    if not config.videos and not config.defaults:
        raise UserError(
            "no videos given", "Pass --videos FILES_OR_FOLDERS, or --defaults for the embedded street clips."
        )
    manifest = prepare_dataset(config)
    if manifest is not None:
        totals = manifest["totals"]
        print(
            f"prepared {totals['videos']} video(s): {totals['train_frames']} train + {totals['val_frames']} val frames "
            f"at {manifest['resolution'][0]}x{manifest['resolution'][1]}, {manifest['fps']} fps -> {config.out}"
        )
        for item in manifest["skipped"]:
            print(f"skipped {item['source']}: {item['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()

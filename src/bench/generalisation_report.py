"""The leave-one-clip-out benchmark's tables (``src/bench/generalisation.py``): every fold's three
models and the references (the real video itself, the game's raster), as plain text for the
terminal and as markdown for ``results.md``."""

from __future__ import annotations

MODELS = ("dit", "regression", "flat")
TABLE_COLUMNS = (
    "real_psnr",
    "real_ssim",
    "real_swd",
    "real_seam_ratio",
    "real_warp_error",
    "game_swd_to_real",
    "game_seam_ratio",
)


def _rows(results: dict) -> list[tuple[str, str, list]]:
    """(held-out clip, row label, cells in TABLE_COLUMNS order) for every fold: the three models,
    then the references (the real video itself; the game's raster frames)."""
    rows = []
    for name, fold in results["folds"].items():
        metrics = fold["metrics"]
        for model in [m for m in MODELS if m in metrics]:
            training = fold["training"][model]
            label = (
                f"{model} ({training['steps']} steps, {training['train_seconds']:.0f} s)"
                if model != "flat"
                else model
            )
            rows.append((name, label, [metrics[model].get(column) for column in TABLE_COLUMNS]))
        reference = metrics["flat"]
        rows.append(
            (
                name,
                "real video",
                [
                    None,
                    None,
                    None,
                    reference.get("real_video_seam_ratio"),
                    reference.get("real_video_warp_error"),
                    None,
                    None,
                ],
            )
        )
        rows.append(
            (
                name,
                "game raster",
                [None] * 5
                + [reference.get("game_raster_swd_to_real"), reference.get("game_raster_seam_ratio")],
            )
        )
    return rows


def _cell(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def format_table(results: dict) -> str:
    """The results as a plain-text table (one block per left-out clip)."""
    header = f"{'held out':<28}{'model':<34}" + "".join(f"{c:>18}" for c in TABLE_COLUMNS)
    lines = [header]
    for name, label, cells in _rows(results):
        lines.append(f"{name[:27]:<28}{label:<34}" + "".join(f"{_cell(c):>18}" for c in cells))
    return "\n".join(lines)


def format_markdown(results: dict) -> str:
    """The results as a markdown table, with how they were made."""
    config = results.get("config", {})
    budget = (
        f"{config.get('max_steps')} DiT steps" if config.get("max_steps") else f"{config.get('minutes')} min"
    )
    lines = [
        "# Leave-one-clip-out generalisation",
        "",
        f"Each model trains on every clip but the held-out one ({budget} per model and fold, the regression",
        f"baseline for the DiT's training time; DiT presets {', '.join(config.get('train_conf', []))}),",
        f"at {config.get('resolution')} and {config.get('fps')} fps, and is scored by `evaluate` on every",
        "frame of the held-out clip and on a game ride. real video / game raster: the references.",
        "",
        "| held out | model | " + " | ".join(TABLE_COLUMNS) + " |",
        "|---|---|" + "---|" * len(TABLE_COLUMNS),
    ]
    for name, label, cells in _rows(results):
        lines.append(f"| {name} | {label} | " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"

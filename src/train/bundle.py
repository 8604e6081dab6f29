"""A bundle: several renderer packages (or runs' packages) in one folder that play loads, with a
model card that compares them."""

from __future__ import annotations

import json
from pathlib import Path

from src.runtime.package import load_package, write_bundle
from src.runtime.package_folders import claim_bundle_folder
from src.train.package import model_card, package_folder

# the evaluate keys a bundle's model card shows, in this order
BUNDLE_CARD_METRICS = (
    "real_psnr", "real_flat_psnr", "real_ssim", "real_flat_ssim", "real_swd", "real_flat_swd",
    "real_seam_ratio", "real_warp_error", "real_video_warp_error", "game_swd_to_real",
    "game_raster_swd_to_real", "game_seam_ratio", "game_warp_error",
    "real_kid", "real_flat_kid", "real_lpips", "real_flat_lpips", "game_kid_to_real", "game_raster_kid_to_real",
    "real_grid_peak", "real_video_grid_peak", "game_grid_peak", "game_raster_grid_peak",
    "game_kid_to_reference", "game_raster_kid_to_reference", "condition_gap_accuracy",
)  # fmt: skip


def bundle_card(
    members: dict[str, Path], *, default: str, play_resolution: str | None, evaluations: dict
) -> str:
    """The bundle's README: what each renderer is, its size, its own card, and the ``evaluate``
    numbers given per renderer (``evaluations``: name -> {label: metrics.json path})."""
    intro = [
        f"Play renders with `{default}` by default"
        + (f" at {play_resolution}" if play_resolution else "")
        + "; `play_game --renderer NAME` starts on another, Tab cycles them, their side-by-side view and the",
        "raster. Each renderer is a complete package in its own folder, with its own model card (data, steps,",
        "validation and the exact commands).",
    ]
    table = [
        "| renderer | model | parameters | trained at | steps | sampling | card |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, path in members.items():
        package = load_package(path)
        params = sum(p.numel() for p in package.model.parameters())
        sampling = (
            f"{package.sampling.num_denoising_steps} step(s)"
            if package.model.renderer_kind == "diffusion"
            else "1 pass / frame"
        )
        table.append(
            f"| `{name}`{' (default)' if name == default else ''} | {type(package.model).__name__} | {params / 1e6:.2f}M | "
            f"{package.width}x{package.height}, {package.fps:g} fps | {package.card.get('step', '-')} | {sampling} | "
            f"[{name}/README.md]({name}/README.md) |"
        )
    rows = [
        (name, label, json.loads(Path(path).read_text()))
        for name, runs in evaluations.items()
        for label, path in runs.items()
    ]
    evaluated = []
    if rows:
        evaluated += [
            [
                "## Evaluated (`evaluate`, clips the renderer never saw in training unless the label says otherwise)"
            ],
            [
                "| renderer | data | " + " | ".join(BUNDLE_CARD_METRICS) + " |",
                "|---|---|" + "---|" * len(BUNDLE_CARD_METRICS),
            ],
        ]
        for name, label, metrics in rows:
            cells = [
                "-" if metrics.get(key) is None else f"{metrics[key]:.4g}" for key in BUNDLE_CARD_METRICS
            ]
            evaluated[-1].append(f"| `{name}` | {label} | " + " | ".join(cells) + " |")
    return model_card("Velodream renderer bundle", intro, table, *evaluated)


def bundle_packages(
    members: dict[str, str | Path],
    out_dir: str | Path,
    *,
    default: str,
    play_resolution: str | None = None,
    evaluations: dict | None = None,
    readme_extra: str = "",
) -> Path:
    """A bundle of packages or runs (a run contributes its ``package`` folder) into ``out_dir``."""

    packages = {name: package_folder(source) for name, source in members.items()}
    claim_bundle_folder(out_dir, inputs=[*members.values(), *packages.values()])  # before the packages load
    readme = bundle_card(
        packages, default=default, play_resolution=play_resolution, evaluations=evaluations or {}
    )
    return write_bundle(
        out_dir, packages, default=default, readme=readme + readme_extra, play_resolution=play_resolution
    )

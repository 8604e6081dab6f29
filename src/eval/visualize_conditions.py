"""Real-video and game conditions side by side, and their domain gap, as files.

``visualize_conditions(config)`` encodes a real clip (decoded and run through the extractors)
and a game autopilot ride with the same statistics and ``encode``, then writes into
``config.out``: ``conditions.mp4`` (per frame: rows frame | depth | flow | normals | flat
colour; real clip left, game ride right), ``conditions_grid.png`` (the same rows for a few
frames), ``histograms.png`` (per encoded channel, real vs game) and ``domain_gap.json`` (1-D
Wasserstein distance per channel, and the held-out accuracy of a classifier trained to tell real
from game conditions, per channel group and for all channels: ``src/eval/condition_gap.py``).
Views show the encoded conditions, i.e. what the model sees. ``conditions`` chooses the game-side
transforms (``src/conditions/align.py``) whose effect on the gap is measured.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from src.common.config import parse_resolution
from src.common.gbuffer_io import load_gbuffer_clip
from src.common.io import atomic_write_json
from src.common.outputs import claim_output_folder, write_output_marker
from src.common.video import save_png, write_mp4
from src.conditions.align import align_game_clip
from src.conditions.encode import ConditionStats, StatsAccumulator, encode
from src.conditions.extract import Extractor
from src.conditions.spec import ConditionSpec
from src.data.config import DecodeConfig
from src.data.prepared import read_manifest
from src.data.sidecar import decode_with_sidecar
from src.data.sources import find_embedded_file
from src.eval.condition_gap import condition_gap_accuracy
from src.eval.config import VisualizeConditionsConfig
from src.eval.domain_gap import domain_gap, plot_histograms
from src.game.recording import record_autopilot_clip
from src.game.visualize import colorize_depth, colorize_flow, colorize_normals

VIEW_NAMES = ("frame", "depth", "flow", "normals", "flat colour")


def condition_views(cond: np.ndarray, spec: ConditionSpec, frame: np.ndarray) -> list[np.ndarray]:
    """frame | depth | flow | normals | flat colour views of one encoded frame (``C h w``)."""
    s = spec.slices()
    h, w = cond.shape[-2:]
    blank = np.zeros((h, w, 3), np.uint8)
    out = [frame]
    out.append(colorize_depth(cond[s["depth"]][0], kind="inverse_relative") if "depth" in s else blank)
    out.append(
        colorize_flow(np.moveaxis(cond[s["flow"]], 0, -1), max_magnitude_px=1.0) if "flow" in s else blank
    )
    out.append(colorize_normals(np.moveaxis(cond[s["normals"]], 0, -1)) if "normals" in s else blank)
    albedo = (
        ((np.moveaxis(cond[s["albedo"]], 0, -1) + 1) * 127.5).clip(0, 255).astype(np.uint8)
        if "albedo" in s
        else blank
    )
    out.append(albedo)
    return out


def _label(image: np.ndarray, text: str) -> np.ndarray:

    image = image.copy()
    cv2.putText(image, text, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def view_column(views: list[np.ndarray], scale: int, title: str | None = None) -> np.ndarray:
    """The views stacked top to bottom, scaled up by ``scale`` and labelled."""

    cells = [cv2.resize(v, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) for v in views]
    cells = [
        _label(c, (f"{title} " if title and i == 0 else "") + VIEW_NAMES[i]) for i, c in enumerate(cells)
    ]
    return np.concatenate(cells, axis=0)


def visualize_conditions(config: VisualizeConditionsConfig) -> dict:
    """Write the four files (see the module docstring); returns what domain_gap.json holds."""
    claim_output_folder(config.out, kind=OUTPUT_KIND, recognise=_is_written_views)  # before any work

    out = Path(config.out)
    spec = config.conditions
    video, real_frames, real, sidecar = _real_clip(config)
    game_dir, game, game_color, game_depth_kind = _game_clip(config, out)
    stats = _encoding_stats(config, real)
    real_fov = sidecar.fov_y_deg() if sidecar is not None else None  # its camera's, else the stats'
    real_cond = encode(
        real, spec=spec, stats=stats, depth_kind="inverse_relative", fov_y_deg=real_fov
    ).numpy()
    game_cond = encode(
        {k: game[k] for k in ("albedo", "depth", "flow")},
        spec=spec,
        stats=stats,
        depth_kind=game_depth_kind,
    ).numpy()

    num = _write_views(config, out, real_cond, game_cond, real_frames=real_frames, game_color=game_color)
    distances = domain_gap(real_cond, game_cond, spec)
    plot_histograms(out / "histograms.png", real_cond, game_cond, spec, distances)
    accuracy = condition_gap_accuracy(real_cond[:num], game_cond[:num], spec, config.gap)
    summary = {
        "metric": "1-D Wasserstein distance between encoded values (range [-1, 1])",
        "real": str(video),
        "real_depth_source": "lidar_sidecar" if sidecar is not None else "estimate",
        "game": str(game_dir),
        "frames": int(num),
        "stats": stats.to_dict(),
        "wasserstein": distances,
        "mean": round(float(np.mean(list(distances.values()))), 5),
        "classifier": "held-out accuracy of a patch classifier telling real from game (0.5 = alike, 1 = apart)",
        "condition_gap_accuracy": accuracy,
        "conditions": spec.to_dict(),
    }
    atomic_write_json(out / "domain_gap.json", summary)
    write_output_marker(out, kind=OUTPUT_KIND)
    return summary


def _real_clip(config: VisualizeConditionsConfig):
    """(the video, its decoded frames, the extracted G-buffer with the sidecar's depth where it
    has one, the sidecar or None)."""

    video = Path(config.real_video) if config.real_video else find_embedded_file("bikes.mp4")
    decode = DecodeConfig(
        fps=config.fps, resolution=config.resolution, start_s=config.start_s, max_frames=config.frames
    )
    # true depth in place of the estimate where the video has a sidecar, as prepare_data takes it
    real_frames, sidecar = decode_with_sidecar(video, decode, sidecar=config.depth_sidecar)
    extractor = Extractor(config.extract)
    extractor.fit(real_frames)
    real = extractor.extract(real_frames)
    if sidecar is not None:
        real["depth"] = sidecar.inverse_depth(0, len(real_frames))
    return video, real_frames, real, sidecar


def _game_clip(config: VisualizeConditionsConfig, out: Path):
    """(the game clip's folder, recorded here unless given; its aligned G-buffer and colour frames
    from the second frame on, the first having no flow; the kind of its depth)."""

    width, height = parse_resolution(config.resolution)
    game_dir = (
        Path(config.game_clip)
        if config.game_clip
        else record_autopilot_clip(
            out / "game_clip",
            width=width,
            height=height,
            frames=config.frames + 1,
            seed=config.game_seed,
            fps=config.fps,
            level=config.game_level,
        )
    )
    game, game_meta = load_gbuffer_clip(game_dir)
    game_color = game["color"]
    game, game_depth_kind = align_game_clip(
        game, config.conditions, depth_kind=game_meta["depth_kind"], extract=config.extract
    )
    game = {k: v[1:] for k, v in game.items()}  # the first frame has no flow
    return game_dir, game, game_color[1:], game_depth_kind


def _encoding_stats(config: VisualizeConditionsConfig, real: dict):
    """The prepared dataset's statistics where it exists, else those of the real clip shown."""

    if config.prepared_dir and (Path(config.prepared_dir) / "manifest.json").is_file():
        return ConditionStats.from_dict(read_manifest(config.prepared_dir)["stats"])
    accumulator = StatsAccumulator(fov_y_deg=config.extract.assumed_fov_y_deg)
    accumulator.add(depth=real["depth"], flow=real["flow"], depth_kind="inverse_relative")
    return accumulator.stats()


def _write_views(
    config: VisualizeConditionsConfig,
    out: Path,
    real_cond: np.ndarray,
    game_cond: np.ndarray,
    *,
    real_frames: np.ndarray,
    game_color: np.ndarray,
) -> int:
    """``conditions.mp4`` and ``conditions_grid.png``; returns the frames shown of each clip."""

    spec = config.conditions
    width, height = parse_resolution(config.resolution)
    num = min(len(real_cond), len(game_cond))
    game_frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in game_color])
    video_frames = []
    for t in range(num):
        left = view_column(condition_views(real_cond[t], spec, real_frames[t]), config.scale, "real")
        right = view_column(condition_views(game_cond[t], spec, game_frames[t]), config.scale, "game")
        video_frames.append(
            np.concatenate([left, np.full((left.shape[0], 4, 3), 255, np.uint8), right], axis=1)
        )
    write_mp4(out / "conditions.mp4", np.stack(video_frames), fps=config.fps)

    picks = np.linspace(0, num - 1, config.grid_frames).round().astype(int)
    columns = [
        view_column(condition_views(real_cond[t], spec, real_frames[t]), config.scale, f"real t{t}")
        for t in picks
    ]
    columns += [
        view_column(condition_views(game_cond[t], spec, game_frames[t]), config.scale, f"game t{t}")
        for t in picks
    ]
    save_png(out / "conditions_grid.png", np.concatenate(columns, axis=1))
    return num


OUTPUT_KIND = "condition views"
WRITTEN_NAMES = {"conditions.mp4", "conditions_grid.png", "histograms.png", "domain_gap.json", "game_clip"}


def _is_written_views(folder: Path) -> bool:
    """A folder this command filled before output markers: only the names it writes."""
    return {child.name for child in folder.iterdir()} <= WRITTEN_NAMES

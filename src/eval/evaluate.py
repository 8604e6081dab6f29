"""``evaluate``: score a renderer package on real clips and on a game ride.

    evaluate(EvaluateConfig(checkpoint=PKG, data=DIR, split="all", out=OUT)) -> metrics

- ``data`` is a prepared dataset (a folder with ``manifest.json``) or video files / a folder of
  videos, which are prepared at the package's resolution and fps first and cached under
  ``cache_dir`` (default ``$VELODREAM_CACHE/prepared``), keyed by the videos and the settings;
  ``split="all"`` prepares them without a held-out part and uses every frame.
- Real clips are the dataset's raw G-buffers encoded with the **package's** statistics and
  condition spec, as play encodes the game's; each is rendered from a fresh context. The game
  ride is an autopilot ride recorded at the same size and rate (``OUT/game_*``, once).
- ``OUT/metrics.json``: one flat JSON object of numbers (``src/eval/scoring.py`` lists every key:
  real_psnr, real_ssim, real_flat_psnr, real_flat_ssim, real_swd, real_flat_swd, real_seam_ratio,
  real_video_seam_ratio, real_warp_error, real_video_warp_error, game_swd_to_real,
  game_raster_swd_to_real, game_warp_error, game_raster_warp_error, game_seam_ratio,
  game_raster_seam_ratio, the KID/FID/ST-LPIPS and grid-peak keys, condition_gap_accuracy and
  condition_gap_accuracy_<group> (held-out accuracy of a classifier telling the real clips'
  conditions from the ride's, all channels and per group: src/eval/condition_gap.py) and a few
  more); a key that could not be measured (no game ride where no OpenGL context can be made; FID
  below 2048 frames per set; KID/LPIPS with ``feature_metrics`` off) is null. ``OUT/run.json``:
  what was evaluated on what.
  ``OUT/real.png`` / ``OUT/game.png``: a few frames as condition | generated | real (raster);
  ``OUT/real.mp4`` / ``OUT/game.mp4`` the whole clips. Every file is written atomically.
- Bad input (no package, no videos, an unknown renderer or split, clips longer than the data)
  is a ``UserError``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from src.common.errors import UserError
from src.common.framelets import framelet_count
from src.common.io import atomic_write_json
from src.common.outputs import claim_output_folder, write_output_marker
from src.data.prepared import read_manifest
from src.eval.condition_gap import condition_gap_accuracy, gap_metrics
from src.eval.config import ConditionGapConfig, EvaluateConfig, check_evaluate_config
from src.eval.evaluation_report import FEATURE_METRICS_NOTE, format_table, run_record, write_previews
from src.eval.prepared_input import prepared_data
from src.eval.reference import judge_ride
from src.eval.scoring import (
    FeatureScorer,
    fid_note,
    load_game_ride,
    open_real_clips,
    score_game_drift,
    score_game_ride,
    score_real_clips,
)
from src.play.fetch import resolve_checkpoint
from src.runtime.backends import make_renderer
from src.runtime.package import default_cache_dir, load_package

# the keys every metrics.json holds (a contract other checks rely on); null where not measured
REQUIRED_KEYS = (
    "real_psnr",
    "real_ssim",
    "real_flat_psnr",
    "real_flat_ssim",
    "real_swd",
    "real_flat_swd",
    "real_seam_ratio",
    "real_video_seam_ratio",
    "real_warp_error",
    "real_video_warp_error",
    "game_swd_to_real",
    "game_raster_swd_to_real",
    "game_warp_error",
    "game_raster_warp_error",
    "game_seam_ratio",
    "game_raster_seam_ratio",
    "condition_gap_accuracy",
    # realism and fidelity as the field measures them (src/eval/inception.py, src/eval/lpips.py)
    # and grid artefacts at every period (grid_peak); null with feature_metrics off
    "real_kid",
    "real_kid_std",
    "real_flat_kid",
    "real_flat_kid_std",
    "real_lpips",
    "real_flat_lpips",
    "real_grid_peak",
    "real_flat_grid_peak",
    "real_video_grid_peak",
    "game_kid_to_real",
    "game_kid_to_real_std",
    "game_raster_kid_to_real",
    "game_raster_kid_to_real_std",
    "game_grid_peak",
    "game_raster_grid_peak",
)
# also in every metrics.json, null unless both sets hold 2048 frames (FID_MIN_FRAMES)
FID_KEYS = ("real_fid", "real_flat_fid", "game_fid_to_real", "game_raster_fid_to_real")


EVALUATION_KIND = "evaluation"
_EVALUATION_FILES = ("metrics.json", "run.json", "real.mp4", "real.png", "game.mp4", "game.png")


def _is_evaluation_folder(folder: Path) -> bool:
    """An ``evaluate`` output from before output markers: its files and its cached game rides."""
    return all(
        child.name in _EVALUATION_FILES or child.name.startswith("game_seed") for child in folder.iterdir()
    )


def _default_out(config: EvaluateConfig, package_path: Path) -> Path:
    data = Path(config.data or "data").resolve()
    return Path("runs") / "evaluate" / f"{package_path.resolve().name}-{data.stem}-{config.split}"


def evaluate(config: EvaluateConfig) -> dict:
    """Score ``config.checkpoint`` (see the module docstring); returns the metrics written to
    ``OUT/metrics.json``."""
    check_evaluate_config(config)
    package, cache_dir = _load_package(config)
    out = Path(config.out) if config.out else _default_out(config, package.path)
    claim_output_folder(out, kind=EVALUATION_KIND, recognise=_is_evaluation_folder, replaces=False)
    dataset, manifest = _open_data(config, package, cache_dir)
    width, height = (int(v) for v in manifest["resolution"])
    fps = float(manifest["fps"])
    renderer = _open_renderer(config, package, width=width, height=height)
    started = time.perf_counter()

    clips = open_real_clips(  # read one at a time as they are scored
        dataset,
        split=config.split,
        clip_frames=config.clip_frames,
        num_clips=config.num_clips,
        spec=package.spec,
        stats=package.stats,
    )
    features = _feature_scorer(config)
    metrics, real = _score_real(config, renderer, clips, package=package, features=features)
    game_metrics, game_video = _score_game(
        config, renderer, out, package=package, real=real, features=features, size=(width, height), fps=fps
    )
    metrics |= game_metrics
    if config.reference:  # the ride against held-out footage of its own place
        metrics |= judge_ride(config, game_video, metrics, size=(width, height, fps), cache_dir=cache_dir,
                              features=features, prepare=prepared_data)  # fmt: skip
    metrics["seconds"] = round(time.perf_counter() - started, 2)

    atomic_write_json(out / "metrics.json", metrics)
    record = run_record(
        config, package=package, renderer=renderer, dataset=dataset, manifest=manifest, clips=real.clips,
        width=width, height=height,
    )  # fmt: skip
    atomic_write_json(out / "run.json", record)
    write_previews(out, real.rows, game_video, fps=fps)
    _print_table(
        config,
        metrics,
        title=f"{type(package.model).__name__} ({package.path}) on {config.split} of {dataset}",
    )
    write_output_marker(out, kind=EVALUATION_KIND)
    print(f"wrote {out / 'metrics.json'}")
    return metrics


def _load_package(config: EvaluateConfig):
    """(the renderer package ``config.checkpoint`` names, fetched if remote; the cache folder)."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    package = load_package(
        resolve_checkpoint(config.checkpoint, cache_dir=cache_dir), renderer=config.renderer
    )
    return package, cache_dir


def _open_data(config: EvaluateConfig, package, cache_dir: Path) -> tuple[Path, dict]:
    """(the prepared dataset of ``--data`` at the package's size and fps, its manifest)."""
    dataset = prepared_data(
        config.data,
        width=package.width,
        height=package.height,
        fps=package.fps,
        split=config.split,
        cache_dir=cache_dir,
    )
    manifest = read_manifest(dataset)
    fps = float(manifest["fps"])
    if abs(fps - package.fps) > 1e-6:
        print(f"note: the data is at {fps:g} fps, the package was trained at {package.fps:g} fps")
    return dataset, manifest


def _open_renderer(config: EvaluateConfig, package, *, width: int, height: int):
    """The package's renderer at the data's size, refusing clips it cannot render whole."""
    renderer = make_renderer(
        package,
        backend=config.backend,
        width=width,
        height=height,
        num_denoising_steps=config.steps,
        device=config.device,
        seed=config.seed,
    )
    framelet_count(
        config.clip_frames,
        renderer.frames_per_step,
        what="--clip_frames",
        whose="the renderer's",
        error=UserError,
    )
    return renderer


def _feature_scorer(config: EvaluateConfig):
    """The Inception and LPIPS networks, on the renderer's device; None with feature_metrics off."""
    if not config.feature_metrics:
        return None
    return FeatureScorer(device="cuda" if renderer_on_cuda(config.device) else "cpu")


def _score_real(config: EvaluateConfig, renderer, clips, *, package, features) -> tuple[dict, object]:
    """Every metrics.json key (null until measured) with the real clips' scores filled in, and
    the clips' ``RealScores``."""
    real = score_real_clips(  # one clip in memory at a time (src/eval/streaming.py)
        renderer, clips, spec=package.spec, seed=config.seed, progress=True, features=features,
        reference_frames=config.game_frames, gap_frames=config.gap.max_frames,
    )  # fmt: skip
    metrics: dict = {key: None for key in REQUIRED_KEYS + FID_KEYS} | real.metrics
    metrics["num_real_clips"] = len(clips)
    metrics["num_real_frames"] = len(clips) * config.clip_frames
    return metrics, real


def _score_game(
    config: EvaluateConfig, renderer, out: Path, *, package, real, features, size: tuple[int, int], fps: float
) -> tuple[dict, np.ndarray | None]:
    """The game ride's metrics (the drift windows with ``drift_ride_frames``) and its preview video;
    ({}, None) without a ride (``game_frames`` 0, or no OpenGL context). ``size``: (width, height)."""
    if not config.game_frames:
        return {}, None
    width, height = size
    game_frames = config.game_frames - config.game_frames % renderer.frames_per_step
    ride_frames = config.drift_ride_frames - config.drift_ride_frames % renderer.frames_per_step
    ride = load_game_ride(
        out,
        size=(height, width),
        frames=ride_frames or game_frames,
        seed=config.game_seed,
        fps=fps,
        spec=package.spec,
        stats=package.stats,
        offset_frames=config.game_offset_frames,
        level=config.game_level,
    )
    if ride is None:
        return {}, None
    common = dict(spec=package.spec, real_frames=real.real_frames, seed=config.seed + 1000, features=features)
    if ride_frames:
        game_metrics, game_video = score_game_drift(renderer, ride, window_frames=game_frames, **common)
    else:
        game_metrics, game_video = score_game_ride(renderer, ride, **common)
    game_metrics["num_game_frames"] = game_frames
    game_metrics |= _condition_gap(real.gap_cond, ride, spec=package.spec, config=config.gap)
    return game_metrics, game_video


def _print_table(config: EvaluateConfig, metrics: dict, *, title: str) -> None:
    """The metrics table, and with feature metrics what they are and why FID may be null."""
    print(format_table(metrics, title=title))
    if config.feature_metrics:
        print(FEATURE_METRICS_NOTE)
        if note := fid_note(metrics):
            print(note)


def _condition_gap(real: np.ndarray | None, ride: dict, *, spec, config: ConditionGapConfig) -> dict:
    """``condition_gap_accuracy`` and ``condition_gap_accuracy_<group>``: how well a classifier
    tells the real clips' encoded conditions (``real``: the frames it uses, ``RealScores.gap_cond``)
    from the game ride's (0.5 = alike, 1.0 = apart)."""
    if real is None or len(real) < 2 or len(ride["cond"]) < 2:
        return {}
    return gap_metrics(condition_gap_accuracy(real, np.asarray(ride["cond"]), spec, config))


def renderer_on_cuda(device: str) -> bool:
    """Whether the feature networks should run on CUDA: where the renderer was asked to."""
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())

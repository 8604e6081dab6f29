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

import dataclasses
import time
from pathlib import Path

import numpy as np

from src.common.errors import UserError
from src.common.framelets import framelet_count
from src.common.io import atomic_write_json
from src.common.outputs import claim_output_folder, write_output_marker
from src.common.ranges import check_ranges
from src.data.prepared import SPLITS, read_manifest
from src.eval.config import REFERENCE_HINT, ConditionGapConfig
from src.eval.evaluation_report import FEATURE_METRICS_NOTE, format_table, run_record, write_previews
from src.eval.prepared_input import prepared_data
from src.runtime.defaults import DEFAULT_CHECKPOINT, DEFAULT_RENDERER

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


@dataclasses.dataclass
class EvaluateConfig:
    """``evaluate``: score a renderer package on real clips and on a game ride."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "clip_frames": "[2, inf)",
        "num_clips": "[1, inf)",
        "game_frames": "[0, 4096]",  # the ride is held in memory whole: bounded (4096 > FID's 2048)
        "game_offset_frames": "[0, inf)",
        "drift_ride_frames": "[0, 12000]",
        "game_seed": "[0, inf)",
        "steps": "[1, inf)",
        "seed": "[0, inf)",
        "num_threads": "[1, inf)",
    }
    CHOICES = {"split": SPLITS}  # checked when parsed (src/common/ranges.py)

    checkpoint: str = DEFAULT_CHECKPOINT
    """the renderer package: a folder, hf://owner/repo[@revision] or https://...#sha256=..."""
    data: str | None = None
    """a prepared dataset folder, or video files / a folder of videos (prepared at the package's size and fps)"""
    split: str = "val"
    """which frames of the data: val (the held-out end of each video), train, or all (every frame)"""
    clip_frames: int = 16
    """frames per real clip, each rendered from a fresh context (a multiple of 2)"""
    num_clips: int | None = None
    """real clips, evenly spread over the split (default: as many as fit without overlapping)"""
    game_frames: int = 64
    """frames of the game autopilot ride (0: no game ride; at most 4096)"""
    game_offset_frames: int = 0
    """frames of the ride skipped before the scored ones (start later in the ride)"""
    drift_ride_frames: int = 0
    """drift: render one continuous ride of this many frames and score its first and last
    game_frames (game_* and game_late_*, game_drift_* = late / early); 3000 scores frames
    0-63 against 2936-2999. 0: the plain game ride; at most 12000"""
    game_seed: int = 7
    """the seed of the game ride (validation's default ride)"""
    steps: int | None = None
    """denoising steps per framelet (default: the package's)"""
    renderer: str = DEFAULT_RENDERER
    """which renderer of the package: default, a bundle's renderer by name (student, dit), or a
    plain package's model class name"""
    backend: str = "torch"
    """torch, ncnn or onnxruntime"""
    device: str = "cpu"
    """cpu, cuda (torch) / vulkan (ncnn), or auto"""
    seed: int = 0
    """the seed of the renderer's noise (real clip i uses seed + i, the game ride seed + 1000)"""
    out: str | None = None
    """where the results go (default: runs/evaluate/<package>-<data>-<split>)"""
    cache_dir: str | None = None
    """where prepared videos and downloaded packages are kept (default: $VELODREAM_CACHE or ~/.cache/velodream)"""
    num_threads: int | None = None
    """CPU threads of torch and of the runtime (ncnn, onnxruntime) (default: torch's own choice)"""
    gap: ConditionGapConfig = dataclasses.field(default_factory=ConditionGapConfig)
    """the classifier behind condition_gap_accuracy (real clips' conditions against the ride's)"""
    reference: str | None = None
    """held-out real footage of the game's place to judge the ride against too (a prepared dataset,
    videos or a folder; every frame): adds the *_to_reference keys (src/eval/reference.py)"""
    feature_metrics: bool = True
    """KID/FID on the standard Inception features and ST-LPIPS (about 0.5 s per frame on a CPU
    core); false leaves those keys null"""


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


def _check(config: EvaluateConfig) -> None:
    """The refusals the arguments alone decide (before torch loads): the declared ranges and choices
    (also for a config built in code), and these."""
    check_ranges(config)
    if not config.data:
        raise UserError("no --data given", "Give a prepared dataset, video files or a folder of videos.")
    if config.clip_frames % 2:
        raise UserError(f"--clip_frames must be a positive multiple of 2, got {config.clip_frames}")
    if config.drift_ride_frames and config.drift_ride_frames < 2 * config.game_frames:
        raise UserError("--drift_ride_frames must be at least twice --game_frames (two windows to compare)")
    if config.game_frames == 1:
        raise UserError("--game_frames must be 0 (no ride) or at least 2 (the warp error compares frames)")
    if config.reference and not Path(config.reference).exists():
        raise UserError(f"--reference {config.reference} does not exist", REFERENCE_HINT)


def evaluate(config: EvaluateConfig) -> dict:
    """Score ``config.checkpoint`` (see the module docstring); returns the metrics written to
    ``OUT/metrics.json``."""
    _check(config)
    # imported here: it pulls cv2, diffusers, torch; a script's --help should not wait for that
    from src.eval.scoring import open_real_clips

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
        from src.eval.reference import judge_ride

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
    import torch

    from src.play.fetch import resolve_checkpoint
    from src.runtime.package import default_cache_dir, load_package

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
    from src.runtime.backends import make_renderer

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
    from src.eval.scoring import FeatureScorer

    if not config.feature_metrics:
        return None
    return FeatureScorer(device="cuda" if renderer_on_cuda(config.device) else "cpu")


def _score_real(config: EvaluateConfig, renderer, clips, *, package, features) -> tuple[dict, object]:
    """Every metrics.json key (null until measured) with the real clips' scores filled in, and
    the clips' ``RealScores``."""
    from src.eval.scoring import score_real_clips

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
    from src.eval.scoring import load_game_ride, score_game_drift, score_game_ride

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
    from src.eval.scoring import fid_note

    print(format_table(metrics, title=title))
    if config.feature_metrics:
        print(FEATURE_METRICS_NOTE)
        if note := fid_note(metrics):
            print(note)


def _condition_gap(real: np.ndarray | None, ride: dict, *, spec, config: ConditionGapConfig) -> dict:
    """``condition_gap_accuracy`` and ``condition_gap_accuracy_<group>``: how well a classifier
    tells the real clips' encoded conditions (``real``: the frames it uses, ``RealScores.gap_cond``)
    from the game ride's (0.5 = alike, 1.0 = apart)."""
    from src.eval.condition_gap import condition_gap_accuracy, gap_metrics

    if real is None or len(real) < 2 or len(ride["cond"]) < 2:
        return {}
    return gap_metrics(condition_gap_accuracy(real, np.asarray(ride["cond"]), spec, config))


def renderer_on_cuda(device: str) -> bool:
    """Whether the feature networks should run on CUDA: where the renderer was asked to."""
    import torch

    return device == "cuda" or (device == "auto" and torch.cuda.is_available())

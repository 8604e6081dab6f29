"""The leave-one-clip-out benchmark: does a renderer generalise to a real clip it never saw?

For each clip of ``videos`` (default: the embedded ``bikes.mp4`` and ``vtest.avi`` and the
videos in ``data/real_videos/``, such as a first-person road clip), or only the one named by ``only``:

1. prepare the *other* clips as a training set (every frame, no held-out cut) and the left-out
   clip as the evaluation set (``split all``), at one resolution and rate;
2. train (a) the DiT with the ``train_conf`` presets through ``src.train.loop.train``, for
   ``max_steps`` steps or for about ``minutes`` (a short timed probe of the same run sets the
   step count, so the learning-rate schedule still ends in its cooldown), (b) the regression
   baseline (``objective: regression`` of the same loop, ``conf/regression_cpu.yaml``) for the
   DiT's measured training time (``max_minutes``), with the DiT's crops, batch, augmentations and
   condition spec, and (c) the flat-colour baseline (no training);
3. run ``evaluate`` on each with the left-out clip and a game ride.

Everything lands under ``out``::

    out/data/<clip>/train, out/data/<clip>/heldout    prepared datasets
    out/<clip>/dit, out/<clip>/regression (training runs), out/<clip>/flat    the models
    out/<clip>/eval-<model>/                          evaluate's files (metrics.json, pictures)
    out/results.json, out/results.md                  every number, and the table

Re-running the same command resumes: finished trainings, packages and evaluations are kept.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from src.bench.config import GeneralisationConfig
from src.bench.generalisation_report import format_markdown, format_table
from src.common.config import load_config
from src.common.errors import UserError
from src.common.io import atomic_write_json, atomic_write_text
from src.common.outputs import claim_output_folder, write_output_marker
from src.data.decode import find_videos
from src.data.prepare import PrepareConfig, prepare_dataset
from src.data.prepared import read_manifest, segments
from src.data.sources import embedded_street_videos
from src.eval.config import EvaluateConfig
from src.eval.evaluate import evaluate
from src.train.config import TrainConfig
from src.train.loop import train
from src.train.package import write_flat_color_package

REGRESSION_CONF = "conf/regression_cpu.yaml"  # the regression baseline's objective, model and optimiser
REGRESSION_UNLIMITED_STEPS = 10**9  # the regression baseline stops on its time budget
USER_VIDEOS = "data/real_videos"  # where the README puts your own videos


def default_videos() -> list[Path]:
    """The embedded street clips and, where the folder exists, the videos in ``data/real_videos``."""

    videos = embedded_street_videos()
    if Path(USER_VIDEOS).is_dir():
        videos += find_videos([USER_VIDEOS])
    return videos


def clip_name(path: Path) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)


def select_folds(videos: list[Path], only: str | None) -> list[Path]:
    """The clips to leave out: all, or the one ``only`` names (a UserError if none or several)."""
    if only is None:
        return videos
    matches = [v for v in videos if only in (v.name, v.stem, clip_name(v))] or [
        v for v in videos if only in v.name
    ]
    if len(matches) != 1:
        names = ", ".join(v.name for v in videos)
        raise UserError(f"--only {only!r} matches {len(matches)} of the clips ({names})", "Name exactly one.")
    return matches


def prepare(videos: list[Path], out: Path, config: GeneralisationConfig) -> Path:
    """``videos`` prepared at the benchmark's size and rate with every frame in the train split."""

    if not (out / "manifest.json").is_file():
        prepare_dataset(
            PrepareConfig(
                videos=[str(v) for v in videos],
                out=str(out),
                resolution=config.resolution,
                fps=config.fps,
                val_fraction=0.0,
            )
        )
    return out


def load_train_config(*presets: str):
    """A ``TrainConfig`` as the layered ``presets`` say."""

    return load_config(TrainConfig, *presets)


def load_train_presets(config: GeneralisationConfig):
    """The DiT's ``TrainConfig`` as its presets say."""
    return load_train_config(*config.train_conf)


def dit_train_config(config: GeneralisationConfig, *, dataset: Path, run_dir: Path, max_steps: int):
    """The DiT's ``TrainConfig``: the presets, this fold's data and run folder, ``max_steps``,
    no validation during training (``evaluate`` runs after) and one checkpoint at the end.
    Warmup and cooldown shrink to fit a short budget (at most 10 % and 25 % of it)."""
    run = load_train_presets(config)
    run.runs_dir, run.run_name = str(run_dir.parent), run_dir.name
    run.data.dataset = str(dataset)
    run.seed = config.seed
    if config.num_threads:
        run.num_threads = config.num_threads
    run.max_steps = max_steps
    run.checkpoint_every_steps = max_steps
    run.validation.enabled = False
    run.validation.every_steps = max_steps
    run.optim.num_warmup_steps = min(run.optim.num_warmup_steps, max_steps // 10)
    run.optim.num_cooldown_steps = min(run.optim.num_cooldown_steps, max_steps // 4)
    return run


def logged_train_windows(run_dir: Path, *, batch_size: int) -> list[tuple[int, float]]:
    """(steps, seconds) of each logged training window of a run: its steps times the batch over
    the logged samples per second (training steps only: no start-up, checkpoints or export)."""
    windows, previous = [], 0
    logs = run_dir / "logs.jsonl"
    for line in logs.read_text().splitlines() if logs.is_file() else []:
        record = json.loads(line)
        if record.get("kind") != "train" or not record.get("samples_per_s"):
            continue
        steps = record["step"] - previous
        previous = record["step"]
        windows.append((steps, steps * batch_size / record["samples_per_s"]))
    return windows


def train_dit(config: GeneralisationConfig, *, dataset: Path, run_dir: Path) -> tuple[Path, dict]:
    """Train (or resume) the DiT for this fold; returns its package and what the training took."""

    budget_file = run_dir.parent / "dit_budget.json"
    if config.max_steps is not None:
        max_steps = config.max_steps
    elif budget_file.is_file():  # decided by an earlier, interrupted run of this command
        max_steps = json.loads(budget_file.read_text())["max_steps"]
    else:
        probe = dit_train_config(config, dataset=dataset, run_dir=run_dir, max_steps=config.probe_steps)
        # the probe is the start of the real run: the preset's warmup, no cooldown yet
        probe.optim.num_warmup_steps = load_train_presets(config).optim.num_warmup_steps
        probe.optim.num_cooldown_steps = 0
        probe.log_every_steps = max(1, config.probe_steps // 4)
        train(probe)
        # the first window holds start-up costs (first batches, allocation): time the later ones
        windows = logged_train_windows(run_dir, batch_size=probe.data.batch_size)[1:]
        seconds_per_step = sum(s for _, s in windows) / max(1, sum(n for n, _ in windows))
        max_steps = max(config.probe_steps + 1, round(config.minutes * 60 / seconds_per_step))

        atomic_write_json(budget_file, {"max_steps": max_steps, "probe_seconds_per_step": seconds_per_step})
    train_config = dit_train_config(config, dataset=dataset, run_dir=run_dir, max_steps=max_steps)
    train(train_config)
    windows = logged_train_windows(run_dir, batch_size=train_config.data.batch_size)
    steps, seconds = sum(n for n, _ in windows), sum(s for _, s in windows)
    return run_dir / "package", {"steps": steps, "train_seconds": round(seconds, 2), "config": train_config}


def regression_train_config(
    config: GeneralisationConfig, *, dataset: Path, dit_config, run_dir: Path, seconds: float
):
    """The regression baseline's ``TrainConfig``: ``REGRESSION_CONF``'s objective, model (with
    ``regression_model`` as its arguments) and optimiser, on the DiT's data, crops, batch,
    augmentations and condition spec, for ``seconds`` of training steps (``max_minutes``) or
    ``regression_max_steps``, no validation and one checkpoint at the end."""
    preset = load_train_config(REGRESSION_CONF)
    run = dataclasses.replace(
        dit_config,
        runs_dir=str(run_dir.parent),
        run_name=run_dir.name,
        objective=preset.objective,
        teacher=None,
        init_from=None,
        model=dataclasses.replace(preset.model, overrides=dict(config.regression_model)),
        optim=preset.optim,
        data=dataclasses.replace(dit_config.data, dataset=str(dataset), clip_frames=preset.data.clip_frames),
        validation=dataclasses.replace(dit_config.validation, enabled=False),
    )
    run.max_steps = config.regression_max_steps or REGRESSION_UNLIMITED_STEPS
    run.max_minutes = seconds / 60
    run.checkpoint_every_steps = run.max_steps
    run.validation.every_steps = run.max_steps
    return run


def train_regression_baseline(
    config: GeneralisationConfig, *, dataset: Path, out_dir: Path, seconds: float, dit_config
) -> tuple[Path, dict]:
    """The regression baseline (``objective: regression`` of the one Trainer) for ``seconds`` of
    training with the DiT's data settings, as a run folder ``out_dir`` (kept if trained)."""

    train_config = regression_train_config(
        config, dataset=dataset, dit_config=dit_config, run_dir=out_dir, seconds=seconds
    )
    if not (out_dir / "package" / "config.json").is_file():
        train(train_config)
    windows = logged_train_windows(out_dir, batch_size=train_config.data.batch_size)
    steps, seconds = sum(n for n, _ in windows), sum(s for _, s in windows)
    return out_dir / "package", {"steps": steps, "train_seconds": round(seconds, 2)}


def evaluate_model(config: GeneralisationConfig, *, package: Path, heldout: Path, out: Path) -> dict:
    """``evaluate`` of ``package`` on every frame of the left-out clip (kept if done)."""
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    fitting = sum(s["num_frames"] // config.clip_frames for s in segments(read_manifest(heldout), "all"))
    return evaluate(
        EvaluateConfig(
            checkpoint=str(package),
            data=str(heldout),
            split="all",
            clip_frames=config.clip_frames,
            num_clips=max(1, min(config.max_clips, fitting)),
            game_frames=config.game_frames,
            steps=config.steps,
            seed=config.seed,
            out=str(out),
            num_threads=config.num_threads,
            feature_metrics=config.feature_metrics,
        )
    )


def run_fold(
    config: GeneralisationConfig, *, heldout_video: Path, videos: list[Path], previous: dict | None = None
) -> dict:
    """Train the three models without ``heldout_video`` and evaluate them on it (without the
    regression baseline when ``config.regression`` is false: ``previous``, this fold's earlier
    results, then supplies its numbers)."""

    out = Path(config.out)
    name = clip_name(heldout_video)
    others = [v for v in videos if v != heldout_video]
    print(
        f"\n== leaving out {heldout_video.name}: training on {', '.join(v.name for v in others)}", flush=True
    )
    train_set = prepare(others, out / "data" / name / "train", config)
    heldout = prepare([heldout_video], out / "data" / name / "heldout", config)
    fold = out / name
    started = time.perf_counter()
    dit_package, dit_training = train_dit(config, dataset=train_set, run_dir=fold / "dit")
    dit_config = dit_training.pop("config")
    flat_package = fold / "flat"
    if not (flat_package / "config.json").is_file():
        write_flat_color_package(flat_package, dataset=train_set, spec=dit_config.conditions)
    packages = {"dit": dit_package, "flat": flat_package}
    training = {"dit": dit_training, "flat": {"steps": 0, "train_seconds": 0.0}}
    if config.regression:
        packages["regression"], training["regression"] = train_regression_baseline(
            config,
            dataset=train_set,
            out_dir=fold / "regression",
            seconds=max(1.0, dit_training["train_seconds"]),
            dit_config=dit_config,
        )
    metrics = {
        model: evaluate_model(config, package=package, heldout=heldout, out=fold / f"eval-{model}")
        for model, package in packages.items()
    }
    if not config.regression and previous and "regression" in previous.get("metrics", {}):
        metrics["regression"] = previous["metrics"]["regression"]
        training["regression"] = previous["training"]["regression"]
    return {
        "heldout": str(heldout_video),
        "train_videos": [str(v) for v in others],
        "training": training,
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 1),
    }


GENERALISATION_KIND = "leave-one-clip-out benchmark"


def run_generalisation(config: GeneralisationConfig) -> dict:
    """Every fold (or the one ``only`` names); writes ``out/results.json`` and ``out/results.md``
    and returns the results."""

    videos = find_videos(config.videos) if config.videos else default_videos()
    if len(videos) < 2:
        raise UserError(
            "leave-one-clip-out needs at least two clips", "Pass two or more videos with --videos."
        )
    if len({clip_name(v) for v in videos}) != len(videos):
        raise UserError("two clips have the same name", "Give the videos distinct file names.")
    if config.max_steps is None and config.minutes <= 0:
        raise UserError("give a training budget: --minutes > 0 or --max_steps")
    out = Path(config.out)
    claim_output_folder(
        out,
        kind=GENERALISATION_KIND,
        inputs=videos,
        replaces=False,
        recognise=lambda folder: (folder / "results.json").is_file() or (folder / "data").is_dir(),
    )
    out.mkdir(parents=True, exist_ok=True)
    write_output_marker(out, kind=GENERALISATION_KIND)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {"folds": {}}
    for heldout in select_folds(videos, config.only):
        name = clip_name(heldout)
        results["folds"][name] = run_fold(
            config, heldout_video=heldout, videos=videos, previous=results["folds"].get(name)
        )
        results["config"] = dataclasses.asdict(config)
        atomic_write_json(results_file, results)
        atomic_write_text(out / "results.md", format_markdown(results))
    print("\n" + format_table(results))
    print(f"\nwrote {results_file} and {out / 'results.md'}")
    return results

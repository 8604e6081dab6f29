"""Export a training run's EMA model as a renderer package with its model card."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

from src.common.config import load_config, to_dict
from src.common.errors import UserError
from src.common.ranges import check_ranges
from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.data.credits import credit_note
from src.data.prepared import read_manifest
from src.data.weights import video_weights
from src.diffusion.flow_matching import resolution_shift
from src.net.flat_color import FlatColorRenderer
from src.net.models import RENDERER_MODELS
from src.runtime.package import SamplingDefaults, write_package
from src.runtime.package_folders import claim_package_folder
from src.train import checkpoint as ckpt
from src.train.config import TrainConfig
from src.train.data import TrainingData
from src.train.model_io import build_model, load_weights_from


def training_command() -> str:
    """The command line that started this process, as a person would retype it."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py") and "/src/scripts/" in argv[0]:
        module = "src.scripts." + Path(argv[0]).stem
        argv = ["python", "-m", module, *argv[1:]]
    return "uv run " + " ".join(shlex.quote(a) for a in argv)


def model_card(title: str, *blocks: list[str]) -> str:
    """Every model card (a run's package, the flat-colour and regression baselines, a bundle):
    ``# title`` and then the blocks of markdown lines, one blank line between blocks, ending in a
    newline. A block that is a section's heading is ``["## Heading"]`` (or starts with it)."""
    return "\n\n".join("\n".join(block) for block in ([f"# {title}"], *blocks) if block) + "\n"


def reproduce_block(*commands: str) -> list[str]:
    """The commands that made a package, as a card's code block."""
    return ["```", *commands, "```"]


def earlier_stages(
    init_from: str | Path | None, *, limit: int = 8, current: tuple[str, int] | None = None
) -> list[dict]:
    """The training runs a run started from, oldest first: ``init_from``'s package card, then the
    card of the run that one started from, and so on (each a dict with ``run_name``, ``dataset``
    and ``command``). The chain ends at a source that is missing or has no card (e.g. a
    package from elsewhere), after ``limit`` stages, or where a card comes round again: a
    folder such as ``game/models/default/student`` that a stage started from and that was later
    replaced by that stage's own package (or by ``current``, this run's ``(run_name, step)``)
    no longer says what was in it then."""
    stages: list[dict] = []
    seen = {current} if current else set()
    source = init_from
    while source and len(stages) < limit:
        conditions_file = package_folder(source) / "conditions.json"
        try:
            card = json.loads(conditions_file.read_text()).get("card") or {}
        except (OSError, json.JSONDecodeError, AttributeError):
            break
        if not card.get("command") or (card.get("run_name"), card.get("step")) in seen:
            break
        seen.add((card.get("run_name"), card.get("step")))
        stages.append(card)
        source = (card.get("train_config") or {}).get("init_from")
    return stages[::-1]


def prepare_line(dataset: str | Path) -> str:
    """The data-preparation line of a card's Reproduce block."""
    if Path(dataset) == Path("data/prepared/default"):
        return "uv run python -m src.scripts.prepare_data --defaults --out data/prepared/default"
    return f"# prepare {dataset} with src.scripts.prepare_data (see data/README.md)"


def _model_description(config) -> list[str]:
    """The card's opening lines: the model class's own (``card_description``), or a line naming it."""
    cls = RENDERER_MODELS.get(config.model.model_class)
    if cls is None or not hasattr(cls, "card_description"):
        return [f"A `{config.model.model_class}` renderer."]
    return cls.card_description(config.objective)


def _model_lines(config, data, *, step: int, num_params: int) -> list[str]:
    """The card's Model section."""
    manifest = data.manifest
    return [
        "## Model",
        f"- `{config.model.model_class}` preset `{config.model.preset}`, {num_params / 1e6:.2f}M parameters, overrides {config.model.overrides or '{}'}",
        f"- resolution {data.frame_hw[1]}x{data.frame_hw[0]}, {manifest.get('fps', '?')} fps, "
        f"conditions {', '.join(config.conditions.channels)}",
        f"- trained {step} steps, batch {config.data.batch_size} clips of {config.data.clip_frames} frames"
        + (f", {tuple(config.data.crop)} crops" if config.data.crop else ""),
        *([f"- objective `{config.objective}`, teacher `{config.teacher}`"] if config.teacher else []),
    ]


def _data_lines(config, data) -> list[str]:
    """The card's Data section: the prepared dataset and each of its videos."""
    manifest = data.manifest
    totals = manifest.get("totals", {})
    extractors = ", ".join(
        f"{name} {value.get('name', '') if isinstance(value, dict) else value}".strip()
        for name, value in manifest.get("extractors", {}).items()
    )
    lines = [
        "## Data",
        f"- prepared dataset `{config.data.dataset}` ({totals.get('train_frames', '?')} training, "
        f"{totals.get('val_frames', '?')} held-out frames; extractors: {extractors})",
    ]
    weights = (
        video_weights(manifest.get("videos", []), config.data.source_weights)
        if config.data.source_weights
        else {}
    )
    for video in manifest.get("videos", []):
        splits = video.get("splits", {})
        source = video.get("source", "?")
        weight = f"; sampling weight {weights[video['id']]:g}" if video.get("id") in weights else ""
        depth = (
            "; depth from its LiDAR sidecar" if video.get("depth_source", "estimate") != "estimate" else ""
        )
        lines.append(
            f"  - `{Path(source).name}`: {splits.get('train', {}).get('num_frames', '?')} train + "
            f"{splits.get('val', {}).get('num_frames', '?')} held-out frames (the last part of the video)"
            f"{weight}{depth}. Source and licence: {credit_note(source)}"
        )
    return lines


# what the validation keys of a run's card mean
_VALIDATION_LINES = [
    "real_*: rollouts on held-out real clips against the real frames (real_flat_*: the flat-colour",
    "input itself as the prediction, a regression-style reference; real_video_*: the real frames",
    "themselves); seam_ratio: seams at the 8-px grid (1.0 = none); warp_error: flicker under the flow",
    "(the extracted one on real clips, the game's exact one on the ride; raster: the raster frames);",
    "swd: sliced Wasserstein distance of patch statistics to the real held-out frames (lower = more",
    "like real video). The same keys as `python -m src.scripts.evaluate` (src/eval/scoring.py).",
]


def _reproduce_lines(config, command: str, stages: list[dict]) -> list[str]:
    """The Reproduce block's commands: each stage's, oldest first, each dataset prepared once."""
    reproduce: list[str] = []
    this_run = {"run_name": config.run_name, "dataset": config.data.dataset, "command": command}
    previous_dataset = None
    for number, stage in enumerate([*stages, this_run], 1):
        if stages:
            reproduce.append(f"# stage {number}: {stage.get('run_name', '?')}")
        if stage.get("dataset") and stage["dataset"] != previous_dataset:  # each dataset prepared once
            reproduce.append(prepare_line(stage["dataset"]))
        previous_dataset = stage.get("dataset")
        reproduce.append(stage["command"])
    return reproduce


def run_card(
    *,
    config,
    data,
    step: int,
    metrics: dict,
    num_params: int,
    command: str,
    appendix: list[list[str]] = (),
    stages: list[dict] = (),
) -> str:
    """A training run's model card: the model, its data, its validation and how to reproduce it;
    ``stages``: the runs it started from, oldest first (``earlier_stages``), whose commands come
    first; ``appendix``: more blocks after those (samples, curves)."""
    metric_lines = [
        f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
        for key, value in metrics.items()
    ] or ["- not run"]
    return model_card(
        f"Velodream renderer: {config.run_name}",
        _model_description(config),
        _model_lines(config, data, step=step, num_params=num_params),
        _data_lines(config, data),
        ["## Validation (EMA weights)"],
        _VALIDATION_LINES,
        metric_lines,
        ["## Reproduce"],
        [
            "Prepare the data, then train; where there are several training lines, the first started the run",
            "and each later one resumed it with the flags shown.",
            *(
                [
                    f"The run started from the EMA weights of an earlier one (`init_from`): all {len(stages) + 1} stages are listed, oldest first."
                ]
                if stages
                else []
            ),
        ],
        reproduce_block(*_reproduce_lines(config, command, stages)),
        [f"Exported {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."],
        *appendix,
    )


def sampling_defaults(config, data) -> SamplingDefaults:
    """The sampling settings a run's package ships with: its ``sampling`` section, with the time
    shift it gives or else the data's resolution shift."""
    return dataclasses.replace(config.sampling, shift=sampling_shift(config, data))


def sampling_shift(config, data) -> float:
    """The time shift a run samples with: ``sampling.shift`` where given, else the resolution
    shift of its frames (``diffusion.shift_base_pixels``)."""
    if config.sampling.shift is not None:
        return config.sampling.shift
    height, width = data.frame_hw
    return resolution_shift(height * width, base_pixels=config.diffusion.shift_base_pixels)


def _card_pictures(run_dir: Path) -> tuple[dict[str, Path], list[list[str]]]:
    """The run's latest sample sheets and training curves that a package carries (name in the
    package -> file in the run), and the card's blocks that show them."""
    samples = run_dir / "samples"
    extra_files = {
        f"samples_{kind}.png": samples / f"{kind}_latest.png"
        for kind in ("real", "game")
        if (samples / f"{kind}_latest.png").is_file()
    }
    appendix = []
    if extra_files:
        appendix += [
            ["## Samples"],
            [f"![{name}]({name})" for name in extra_files],
            ["Columns: flat-colour condition | generated | real frames (real) or raster frames (game)."],
        ]
    if (run_dir / "curves.png").is_file():
        extra_files["curves.png"] = run_dir / "curves.png"
        appendix += [
            ["## Training curves"],
            ["![curves](curves.png)"],
            ["Loss, learning rate and each validation metric against step."],
        ]
    return extra_files, appendix


def export_package(
    model, data, config, out_dir: str | Path, *, step: int, metrics: dict, run_dir: Path
) -> Path:
    """Write ``model`` (the EMA weights) as a renderer package; the card quotes the run's command."""
    height, width = data.frame_hw
    command_file = Path(run_dir) / "command.txt"
    command = command_file.read_text().strip() if command_file.is_file() else training_command()
    num_params = sum(p.numel() for p in model.parameters())
    card = {
        "run_name": config.run_name,
        "step": step,
        "metrics": metrics,
        "command": command,
        "dataset": config.data.dataset,
        "train_config": to_dict(config),
    }
    sampling = sampling_defaults(config, data)
    extra_files, appendix = _card_pictures(Path(run_dir))
    readme = run_card(
        config=config,
        data=data,
        step=step,
        metrics=metrics,
        num_params=num_params,
        command=command,
        appendix=appendix,
        stages=earlier_stages(config.init_from, current=(config.run_name, step)),
    )
    return write_package(
        out_dir,
        inputs=[run_dir],
        extra_files=extra_files,
        model=model,
        spec=config.conditions,
        stats=data.stats,
        width=width,
        height=height,
        fps=float(data.manifest.get("fps", 12)),
        sampling=sampling,
        readme=readme,
        card=card,
    )


def latest_validation_metrics(run_dir: str | Path) -> dict:
    """The newest validation record of a run's ``logs.jsonl`` (without its ``kind``); {} if none."""
    metrics: dict = {}
    log = Path(run_dir) / "logs.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "validation":
                metrics = {k: v for k, v in record.items() if k not in ("kind",)}
    return metrics


def package_folder(source: str | Path) -> Path:
    """A package folder as given, or a run folder's latest exported package (``RUN/package``)."""
    source = Path(source)
    if not (source / "config.json").is_file() and (source / "package" / "config.json").is_file():
        return source / "package"
    return source


def export_run(
    run_dir: str | Path, out_dir: str | Path | None = None, *, albedo_detail: float | None = None
) -> tuple[Path, int]:
    """Write a renderer package from the newest complete checkpoint of a training run (its EMA
    weights, the run's config and newest validation metrics) into ``out_dir`` (default
    ``RUN/package``); returns the package folder and the checkpoint's step. ``albedo_detail``
    replaces the run's ``sampling.albedo_detail`` (a render-time setting: the weights are the same)."""
    run = Path(run_dir)
    if not (run / "run_config.yaml").is_file():
        raise UserError(f"{run} is not a training run (no run_config.yaml)", "Pass a folder under runs/.")
    out = Path(out_dir) if out_dir else run / "package"
    claim_package_folder(out, inputs=[run])  # before the model is built
    train_config = load_config(TrainConfig, run / "run_config.yaml")
    if albedo_detail is not None:
        train_config.sampling.albedo_detail = albedo_detail
        check_ranges(train_config.sampling)
    latest = ckpt.latest_checkpoint(run)
    if latest is None:
        raise UserError(
            f"{run} has no complete checkpoint yet", "Train it for at least checkpoint_every_steps steps."
        )
    step, _ = latest
    data = TrainingData(train_config, process_index=0, num_processes=1)
    model = build_model(train_config, data)
    load_weights_from(model, run)
    export_package(
        model.eval(), data, train_config, out, step=step, metrics=latest_validation_metrics(run), run_dir=run
    )
    return out, step


def write_flat_color_package(out_dir: str | Path, *, dataset: str | Path, spec=None) -> Path:
    """A flat-colour baseline package (``FlatColorRenderer``) for a prepared dataset: its
    normalisation statistics, frame size and fps, and the albedo planes of ``spec`` (default:
    the standard spec). It has no weights, so it needs no training."""
    claim_package_folder(out_dir, inputs=[dataset], model_class=FlatColorRenderer.__name__)
    spec = spec or ConditionSpec()
    albedo = spec.slices().get("albedo")
    if albedo is None:
        raise UserError("the flat-colour baseline needs the albedo channel in the condition spec")
    manifest = read_manifest(dataset)
    width, height = (int(v) for v in manifest["resolution"])
    model = FlatColorRenderer(
        condition_channels=spec.num_channels, albedo_channels=list(range(albedo.start, albedo.stop))
    )
    readme = model_card(
        "Velodream renderer: flat-colour baseline",
        [
            "Returns the albedo (flat-colour) condition planes as the frame: no weights, no training. The",
            "reference a learned renderer has to beat on real clips and game rides.",
        ],
        [
            f"- statistics, resolution {width}x{height} and {manifest['fps']} fps from the prepared dataset `{dataset}`"
        ],
        ["## Reproduce"],
        reproduce_block(training_command()),
    )
    return write_package(
        out_dir,
        model=model,
        spec=spec,
        stats=ConditionStats.from_dict(manifest["stats"]),
        width=width,
        height=height,
        fps=float(manifest["fps"]),
        sampling=SamplingDefaults(num_denoising_steps=1),
        readme=readme,
        card={"baseline": "flat_color", "dataset": str(dataset), "step": 0},
        inputs=[dataset],
    )

"""Training the regression baseline (``src/net/regression.py``): plain L1 from conditions to frames.

A short, plain loop (no accelerate, no EMA, no resume: it is a baseline that runs for minutes)
over the training split of a prepared dataset, with the same clips, crops, frame skips and
augmentations as the DiT, so that a comparison at equal data and time is fair. It stops after
``max_steps`` optimiser steps or ``max_seconds`` of training, whichever comes first, and writes
``out_dir`` in one rename: ``config.json`` + ``diffusion_pytorch_model.safetensors``
(``save_pretrained``), ``training.json`` (the training config, condition channels and
statistics, steps, seconds and the loss curve) and ``package/``, a renderer package
(``src/runtime/package.py``) with the dataset's statistics, resolution and fps, which play,
``evaluate``, the benchmark and the ncnn export load like any other renderer.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from src.common.errors import UserError
from src.common.io import atomic_directory, atomic_write_json, claim_output_folder
from src.common.progress import tqdm  # plain lines when the output is not a terminal
from src.conditions.augment import AugmentConfig
from src.conditions.spec import ConditionSpec
from src.data.loader import ClipDataset
from src.data.prepared import read_manifest
from src.net.regression import RegressionNet
from src.runtime.package import SamplingDefaults, write_package
from src.train.package import model_card, reproduce_block, training_command

REGRESSION_KIND = "regression baseline"


def _is_regression_folder(folder: Path) -> bool:
    """A regression baseline written before output markers: only the files ``train_regression`` writes."""
    return {child.name for child in folder.iterdir()} <= {
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "training.json",
        "package",
    }


@dataclasses.dataclass
class RegressionTrainConfig:
    """What the regression baseline trains on, for how long, and how."""

    dataset: str = "data/prepared/default"
    """a prepared dataset folder written by prepare_data (its train split is used)"""
    max_steps: int | None = 1000
    """stop after this many optimiser steps (None = no step limit)"""
    max_seconds: float | None = None
    """stop after this many seconds of training (None = no time limit)"""
    crop: tuple[int, int] | None = (64, 64)
    """random crop (height, width) of each clip; None trains on whole frames"""
    clip_frames: int = 2
    """frames per clip (each frame is an independent sample for this net)"""
    frame_skip: tuple[int, int] = (1, 1)
    batch_size: int = 8
    """clips per optimiser step"""
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str | None = None
    """torch device (default: cuda where available, else cpu)"""
    num_threads: int | None = None
    """torch CPU threads (default: torch's own choice)"""
    conditions: ConditionSpec = dataclasses.field(default_factory=ConditionSpec)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    """the same training-time augmentations the DiT gets"""
    model: dict = dataclasses.field(default_factory=dict)
    """RegressionNet arguments (e.g. {hidden_channels: 32}); condition_channels come from conditions"""


@dataclasses.dataclass
class RegressionTrainResult:
    out_dir: Path
    package_dir: Path  # out_dir / "package": the renderer package
    model: RegressionNet  # the trained net, on the CPU, in eval mode
    num_steps: int
    train_seconds: float
    losses: list[float]  # L1 per step, on the [-1, 1] frame scale


def l1_loss(model: RegressionNet, batch: dict) -> torch.Tensor:
    """Mean absolute error of the unclamped prediction against ``frames`` (b t 3 h w, [-1, 1])."""
    return (model(batch["cond"], clamp=False) - batch["frames"]).abs().mean()


def train_regression(config: RegressionTrainConfig, *, out_dir: str | Path) -> RegressionTrainResult:
    """Train a ``RegressionNet`` with L1 on ``config.dataset``'s train split; save it to ``out_dir``."""
    claim = dict(kind=REGRESSION_KIND, inputs=[config.dataset], recognise=_is_regression_folder)
    claim_output_folder(out_dir, **claim)  # before training
    if config.max_steps is None and config.max_seconds is None:
        raise UserError("the regression baseline needs max_steps or max_seconds", "Set one of them.")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(config.seed)
    dataset = ClipDataset(
        config.dataset,
        split="train",
        clip_frames=config.clip_frames,
        crop=tuple(config.crop) if config.crop else _frame_size(config.dataset),
        seed=config.seed,
        frame_skip=tuple(config.frame_skip),
        spec=config.conditions,
        augment=config.augment,
    )
    model = RegressionNet(**{**config.model, "condition_channels": config.conditions.num_channels}).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    losses: list[float] = []
    train_seconds = 0.0
    step = 0
    model.train()
    progress = tqdm(total=config.max_steps, desc="train regression", dynamic_ncols=True)
    while (config.max_steps is None or step < config.max_steps) and (
        config.max_seconds is None or train_seconds < config.max_seconds
    ):
        start = time.perf_counter()
        batch = {key: value.to(device) for key, value in dataset.batch_at(step, config.batch_size).items()}
        loss = l1_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        train_seconds += time.perf_counter() - start
        step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{losses[-1]:.4f}")
    progress.close()
    model.eval()
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, **claim) as staging:
        model.to("cpu").save_pretrained(staging)
        atomic_write_json(
            staging / "training.json",
            {
                "kind": "regression_baseline",
                "num_steps": step,
                "train_seconds": round(train_seconds, 3),
                "final_loss": losses[-1] if losses else None,
                "losses": losses,
                "channels": list(config.conditions.channels),
                "stats": dataset.stats.to_dict(),
                "train_config": _as_json(dataclasses.asdict(config)),
            },
        )
        write_regression_package(
            staging / "package",
            model=model,
            config=config,
            dataset=dataset,
            num_steps=step,
            train_seconds=train_seconds,
            final_loss=losses[-1] if losses else None,
        )
    return RegressionTrainResult(
        out_dir=out_dir,
        package_dir=out_dir / "package",
        model=model,
        num_steps=step,
        train_seconds=train_seconds,
        losses=losses,
    )


def write_regression_package(
    directory: Path,
    *,
    model: RegressionNet,
    config: RegressionTrainConfig,
    dataset: ClipDataset,
    num_steps: int,
    train_seconds: float,
    final_loss: float | None,
) -> Path:
    """The trained net as a renderer package: the dataset's statistics, full frame size and fps."""
    width, height = (int(v) for v in dataset.manifest["resolution"])
    fps = float(dataset.manifest["fps"])
    command = training_command()
    videos = [Path(v.get("source", "?")).name for v in dataset.manifest.get("videos", [])]
    readme = model_card(
        "Velodream renderer: regression baseline",
        [
            "A small per-frame conv net (`RegressionNet`) trained with plain L1 from the encoded conditions",
            "to the real frames, as a residual on the flat-colour input. It predicts the conditional mean:",
            "high PSNR/SSIM on real reconstruction, no detail the conditions do not carry. The reference a",
            "generative renderer is compared with at equal data and time.",
        ],
        [
            f"- {sum(p.numel() for p in model.parameters()) / 1e6:.3f}M parameters, {model.config.hidden_channels} "
            f"channels, {model.config.num_blocks} blocks; conditions {', '.join(config.conditions.channels)}",
            f"- trained {num_steps} steps in {train_seconds:.0f} s on the train split of `{config.dataset}` "
            f"({', '.join(videos) or '?'}), final L1 {final_loss if final_loss is None else round(final_loss, 4)}",
            f"- statistics, resolution {width}x{height} and {fps:g} fps from that dataset",
        ],
        ["## Reproduce"],
        reproduce_block(command),
    )
    return write_package(
        directory,
        model=model,
        spec=config.conditions,
        stats=dataset.stats,
        width=width,
        height=height,
        fps=fps,
        sampling=SamplingDefaults(num_denoising_steps=1),
        readme=readme,
        card={
            "baseline": "regression",
            "dataset": str(config.dataset),
            "step": num_steps,
            "train_seconds": round(train_seconds, 3),
            "final_loss": final_loss,
            "command": command,
            "train_config": _as_json(dataclasses.asdict(config)),
        },
    )


def _frame_size(dataset: str | Path) -> tuple[int, int]:
    width, height = read_manifest(dataset)["resolution"]
    return int(height), int(width)


def _as_json(value):
    if isinstance(value, dict):
        return {key: _as_json(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(inner) for inner in value]
    return value

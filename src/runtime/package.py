"""The renderer package: a directory that fully describes a trained renderer.

    config.json        model class and hyper-parameters (diffusers ConfigMixin format)
    model.safetensors  EMA weights (safetensors only: nothing here is ever unpickled)
    conditions.json    condition channels, normalisation statistics, the model's resolution and
                       fps, and its default sampling settings
    README.md          the model card (data, steps, validation metrics, the training command)
    ncnn/              optional exports, one folder per input shape, made on demand

Training writes it (``write_package``); play, export, evaluation and publishing read it
(``load_package``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from src.common.errors import UserError
from src.common.io import atomic_directory, atomic_write_json
from src.conditions.encode import ConditionStats
from src.conditions.spec import ConditionSpec
from src.net.dit import VelodreamDiT

PACKAGE_FORMAT_VERSION = 1


@dataclasses.dataclass
class SamplingDefaults:
    num_denoising_steps: int = 2
    context_sigma: float = 0.05
    shift: float = 1.0


@dataclasses.dataclass
class RendererPackage:
    """A loaded package: the model (eval mode, CPU, fp32) and everything ``encode`` needs."""

    path: Path
    model: VelodreamDiT
    spec: ConditionSpec
    stats: ConditionStats
    width: int
    height: int
    fps: float
    sampling: SamplingDefaults
    card: dict


def write_package(
    directory: str | Path,
    *,
    model: VelodreamDiT,
    spec: ConditionSpec,
    stats: ConditionStats,
    width: int,
    height: int,
    fps: float,
    sampling: SamplingDefaults,
    readme: str,
    card: dict,
    extra_files: dict[str, Path] | None = None,
) -> Path:
    """Write a package atomically (a half-written package never replaces a good one).

    ``extra_files`` maps names inside the package to files copied in (e.g. sample images).
    """
    import shutil

    directory = Path(directory)
    state = {
        name: tensor.detach().to("cpu", torch.float32).contiguous()
        for name, tensor in model.state_dict().items()
    }
    with atomic_directory(directory) as staging:
        model.save_config(staging)
        save_file(state, staging / "model.safetensors", metadata={"format": "pt"})
        atomic_write_json(
            staging / "conditions.json",
            {
                "format_version": PACKAGE_FORMAT_VERSION,
                "channels": list(spec.channels),
                "stats": stats.to_dict(),
                "width": width,
                "height": height,
                "fps": fps,
                "sampling": dataclasses.asdict(sampling),
                "card": card,
            },
        )
        (staging / "README.md").write_text(readme)
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, staging / name)
    return directory


def load_package(directory: str | Path, *, device: str | torch.device = "cpu") -> RendererPackage:
    """Read a package written by ``write_package`` (check it first with ``check_package``)."""
    from src.play.checkpoints import check_package

    directory = check_package(directory)
    try:
        meta = json.loads((directory / "conditions.json").read_text())
        config = VelodreamDiT.load_config(directory)
    except (json.JSONDecodeError, OSError, ValueError) as error:
        raise UserError(f"renderer package {directory} has an unreadable file: {error}") from None
    if meta.get("format_version") != PACKAGE_FORMAT_VERSION:
        raise UserError(
            f"renderer package {directory} has format {meta.get('format_version')}, this version reads "
            f"{PACKAGE_FORMAT_VERSION}",
            "Update Velodream or re-export the package.",
        )
    model = VelodreamDiT.from_config(config)
    state = load_file(directory / "model.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(
            f"renderer package {directory} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.to(device).eval()
    return RendererPackage(
        path=directory,
        model=model,
        spec=ConditionSpec(channels=tuple(meta["channels"])),
        stats=ConditionStats.from_dict(meta["stats"]),
        width=int(meta["width"]),
        height=int(meta["height"]),
        fps=float(meta["fps"]),
        sampling=SamplingDefaults(**meta.get("sampling", {})),
        card=meta.get("card", {}),
    )

"""Building the DiT for a run and starting it from another run's or package's weights."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from src.common.errors import UserError
from src.net.dit import VelodreamDiT
from src.net.presets import build_dit
from src.train import checkpoint as ckpt


def build_model(config, data) -> VelodreamDiT:
    """The run's DiT: preset + overrides, with the condition channels of the run's spec (their
    number, and the albedo planes as the residual the DiT predicts on) and a position grid
    large enough for the training frames."""
    height, width = data.frame_size
    overrides = dict(config.model.overrides)
    overrides["condition_channels"] = config.conditions.num_channels
    albedo = config.conditions.slices().get("albedo")
    overrides.setdefault(
        "residual_condition_channels", list(range(albedo.start, albedo.stop)) if albedo is not None else None
    )
    from src.net.presets import DIT_PRESETS

    if config.model.preset not in DIT_PRESETS:
        raise UserError(
            f"unknown model preset '{config.model.preset}'", f"Choose from {', '.join(DIT_PRESETS)}."
        )
    preset = {**DIT_PRESETS[config.model.preset], **overrides}
    patch = preset["patch_size"]
    overrides.setdefault("max_grid_h", max(preset["max_grid_h"], math.ceil(height / patch)))
    overrides.setdefault("max_grid_w", max(preset["max_grid_w"], math.ceil(width / patch)))
    return build_dit(config.model.preset, **overrides)


def ema_weights_of(source: str | Path) -> dict[str, torch.Tensor]:
    """EMA weights of a renderer package, or of a run folder (its newest checkpoint, else its package)."""
    source = Path(source)
    if (source / "model.safetensors").is_file():
        return load_file(source / "model.safetensors")
    latest = ckpt.latest_checkpoint(source)
    if latest is not None:
        for candidate in sorted(latest[1].glob("custom_checkpoint_*.pkl")):
            state = torch.load(candidate, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "shadow" in state:
                return state["shadow"]
    if (source / "package" / "model.safetensors").is_file():
        return load_file(source / "package" / "model.safetensors")
    raise UserError(
        f"no weights found in {source}",
        "init_from takes a run folder with a checkpoint (runs/NAME) or a renderer package directory.",
    )


def load_weights_from(model: VelodreamDiT, source: str | Path) -> None:
    """Copy matching weights from ``source`` into ``model`` (positions are tables, not weights,
    so a model with a larger grid takes a low-resolution model's weights unchanged)."""
    weights = ema_weights_of(source)
    own = model.state_dict()
    mismatched = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise UserError(
            f"init_from {source}: weights of a different architecture ({mismatched[:3]} differ in shape)",
            "Use the same model preset and condition channels as the source run.",
        )
    missing = [k for k in own if k not in weights]
    if missing:
        raise UserError(f"init_from {source}: the source lacks {missing[:3]}", "Use the same model preset.")
    model.load_state_dict({k: weights[k] for k in own}, strict=True)
    print(f"initialised from the EMA weights of {source}")

"""Building a run's model (by ``model.model_class``) and starting it from another run's or
package's weights."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from src.common.errors import UserError
from src.net.presets import DIT_PRESETS, build_dit
from src.net.regression import RegressionNet
from src.net.student import build_student
from src.train import checkpoint as ckpt


def build_model(config, data):
    """The run's model, by ``config.model.model_class`` (``MODEL_BUILDERS``)."""
    if config.model.model_class not in MODEL_BUILDERS:
        raise UserError(
            f"unknown model class '{config.model.model_class}'", f"Choose from {', '.join(MODEL_BUILDERS)}."
        )
    return MODEL_BUILDERS[config.model.model_class](config, data)


def build_dit_model(config, data):
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

    if config.model.preset not in DIT_PRESETS:
        raise UserError(
            f"unknown model preset '{config.model.preset}'", f"Choose from {', '.join(DIT_PRESETS)}."
        )
    preset = {**DIT_PRESETS[config.model.preset], **overrides}
    patch = preset["patch_size"]
    overrides.setdefault("max_grid_h", max(preset["max_grid_h"], math.ceil(height / patch)))
    overrides.setdefault("max_grid_w", max(preset["max_grid_w"], math.ceil(width / patch)))
    return build_dit(config.model.preset, **overrides)


def build_student_model(config, data):
    """The run's student: preset + overrides, told where the run's spec puts albedo, depth and
    flow, and the dataset's flow scale (it decodes the encoded flow to warp its last frame)."""
    slices = config.conditions.slices()
    albedo, depth, flow = slices.get("albedo"), slices.get("depth"), slices.get("flow")
    overrides = {
        "albedo_channels": list(range(albedo.start, albedo.stop)) if albedo is not None else None,
        "depth_channel": depth.start if depth is not None else None,
        "flow_channels": list(range(flow.start, flow.stop)) if flow is not None else None,
        "flow_scale": data.stats.flow_scale,
        **config.model.overrides,
        "condition_channels": config.conditions.num_channels,
    }
    return build_student(config.model.preset, **overrides)


def build_regression_model(config, data):
    """The regression baseline: a ``RegressionNet`` with ``model.overrides`` as its arguments (it
    has no size presets) and the run's number of condition channels."""
    return RegressionNet(**{**config.model.overrides, "condition_channels": config.conditions.num_channels})


# model.model_class -> builder(config, data); the class is also what the package's config.json names
MODEL_BUILDERS = {
    "VelodreamDiT": build_dit_model,
    "StudentUNet": build_student_model,
    "RegressionNet": build_regression_model,
}


def ema_weights_of(source: str | Path) -> dict[str, torch.Tensor]:
    """EMA weights of a renderer package, or of a run folder (its newest checkpoint, else its package)."""
    source = Path(source)
    if (source / "model.safetensors").is_file():
        return _read_weights(source / "model.safetensors", source)
    for _, folder in reversed(ckpt.list_checkpoints(source)):  # the newest that reads
        try:
            for candidate in sorted(folder.glob("custom_checkpoint_*.pkl")):
                state = torch.load(candidate, map_location="cpu", weights_only=True)
                if isinstance(state, dict) and "shadow" in state:
                    return state["shadow"]
        except ckpt.DAMAGED_ERRORS as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            print(f"init_from: checkpoint {folder} cannot be read ({first}): trying the one before it")
    if (source / "package" / "model.safetensors").is_file():
        return _read_weights(source / "package" / "model.safetensors", source)
    raise UserError(
        f"no weights found in {source}",
        "init_from takes a run folder with a checkpoint (runs/NAME) or a renderer package directory.",
    )


def _read_weights(path: Path, source: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except ckpt.DAMAGED_ERRORS + (SafetensorError,) as error:
        raise UserError(
            f"init_from {source}: {path} is not a readable safetensors file ({error})",
            "It is damaged or truncated: export or download it again.",
        ) from None


def load_weights_from(model, source: str | Path) -> None:
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

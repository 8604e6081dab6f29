"""Building a run's model (by ``model.model_class``) and starting it from another run's or
package's weights."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from src.common.errors import UserError
from src.net.models import RENDERER_MODELS
from src.train import checkpoint as ckpt


def build_model(config, data):
    """The run's model: ``from_run`` of the class ``config.model.model_class`` names."""
    trainable = [name for name, cls in RENDERER_MODELS.items() if hasattr(cls, "from_run")]
    if config.model.model_class not in trainable:
        raise UserError(
            f"unknown model class '{config.model.model_class}'", f"Choose from {', '.join(trainable)}."
        )
    return RENDERER_MODELS[config.model.model_class].from_run(config, data)


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

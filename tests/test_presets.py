"""One home per default: the config dataclasses hold every default, the presets only what differs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from src.common.config import load_config, to_dict
from src.train.config import TrainConfig

CONF = Path(__file__).resolve().parent.parent / "conf"

# keys a preset states at their default on purpose: they undo an earlier layer's value
# (distill_gpu is layered on pretrain_lowres or pretrain_highres)
UNDOES_AN_EARLIER_LAYER = {
    "distill_gpu.yaml": {
        "checkpoint_every_steps",
        "optim.num_warmup_steps",
        "validation.every_steps",
        "sampling.num_denoising_steps",
    },
    # student_finetune_cpu is layered on student_cpu, whose learning rate is for training from scratch
    "student_finetune_cpu.yaml": {"optim.learning_rate"},
    # student224_stabilise_cpu is layered on student_cpu: 4-frame clips at 224x224 instead of its 6
    # at 96x96, and its own prepared data instead of the embedded clips prepared when missing
    "student224_stabilise_cpu.yaml": {"data.clip_frames", "data.prepare_defaults_if_missing"},
}


def _leaves(mapping: dict, prefix: str = ""):
    for key, value in mapping.items():
        if isinstance(value, dict) and key not in ("overrides", "source_weights"):  # each is one value
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _default(defaults: dict, key: str):
    value = defaults
    for part in key.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("preset", sorted(path.name for path in CONF.glob("*.yaml")))
def test_a_preset_states_only_what_differs_from_the_defaults(preset):
    defaults = to_dict(TrainConfig())
    stated = yaml.safe_load((CONF / preset).read_text()) or {}
    restated = [
        key
        for key, value in _leaves(stated)
        if _default(defaults, key) == (list(value) if isinstance(value, tuple) else value)
        and key not in UNDOES_AN_EARLIER_LAYER.get(preset, set())
    ]
    assert restated == [], f"{preset} restates defaults of src/train/config.py: {restated}"


def test_the_base_layer_is_the_defaults():
    assert to_dict(load_config(TrainConfig, CONF / "base.yaml")) == to_dict(TrainConfig())


def test_sampling_settings_written_under_validation_by_older_configs_still_load(tmp_path):
    old = tmp_path / "run_config.yaml"  # as runs wrote it before the sampling section existed
    old.write_text(
        "validation:\n  num_denoising_steps: 1\n  context_sigma: 0.1\n  context_from_last_step: true\n"
    )
    config = load_config(TrainConfig, old)
    assert (config.sampling.num_denoising_steps, config.sampling.context_sigma) == (1, 0.1)
    assert config.sampling.context_from_last_step is True
    assert config.validation.num_denoising_steps is None  # one home: read into sampling


def test_the_distill_presets_train_for_the_sampling_their_package_ships():
    config = load_config(TrainConfig, CONF / "base.yaml", CONF / "cpu_tiny.yaml", CONF / "distill_cpu.yaml")
    assert (config.sampling.num_denoising_steps, config.sampling.context_from_last_step) == (1, True)

"""The CPU preset pair for a 224x224 DiT: the low-resolution stage and the play-resolution
fine-tune resolve, and run two steps each, the second starting from the first's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from src.common.config import load_config
from src.net.presets import DIT_PRESETS
from src.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("dit224_lowres_cpu", "dit224_highres_cpu")


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_both_stages_resolve_to_the_same_patch16_model():
    configs = [load_config(TrainConfig, "conf/base.yaml", f"conf/{stage}.yaml") for stage in STAGES]
    low, high = configs
    assert low.model.preset == high.model.preset == "dit224"
    assert low.model.overrides == high.model.overrides == {}
    preset = DIT_PRESETS["dit224"]
    assert preset["patch_size"] == 16 and preset["max_grid_h"] == 14
    # the seam-free smooth decoder (the tiny preset's) at half resolution
    assert preset["decoder_scale"] == 2 and preset["decoder"] == DIT_PRESETS["tiny"]["decoder"]
    assert high.init_from == f"runs/{low.run_name}"
    assert low.data.dataset != high.data.dataset


def run_train(args):
    from accelerate.state import AcceleratorState, PartialState

    from src.scripts.train_net import main

    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    main(args)


@pytest.mark.training
def test_two_steps_of_each_stage_the_second_from_the_first(tiny_dataset, tmp_path):
    common = [
        "--runs_dir", str(tmp_path), "--data.dataset", str(tiny_dataset), "--max_steps", "2",
        "--data.batch_size", "2", "--checkpoint_every_steps", "2", "--validation.enabled", "false",
    ]  # fmt: skip
    run_train(["--conf", "conf/base.yaml", "--conf", "conf/dit224_lowres_cpu.yaml", *common])
    low_run = tmp_path / "dit224_lowres_cpu"
    low_weights = load_file(low_run / "package" / "model.safetensors")
    run_train(
        [
            "--conf",
            "conf/base.yaml",
            "--conf",
            "conf/dit224_highres_cpu.yaml",
            *common,
            "--init_from",
            str(low_run),
        ]
    )
    high_run = tmp_path / "dit224_highres_cpu"
    assert (high_run / "checkpoints" / "step-0000002" / "complete.json").is_file()
    high_weights = load_file(high_run / "package" / "model.safetensors")
    assert high_weights.keys() == low_weights.keys()
    assert high_weights["x_embed.weight"].shape[-1] == 16  # patch 16
    assert "decoder_condition.weight" in high_weights  # the half-resolution smooth decoder


def test_the_gpu_presets_train_the_same_model_in_three_stages():
    names = ("dit224_lowres_gpu", "dit224_highres_gpu", "dit224_distill_gpu")
    low, high, distill = (load_config(TrainConfig, "conf/base.yaml", f"conf/{name}.yaml") for name in names)
    cpu = load_config(TrainConfig, "conf/base.yaml", "conf/dit224_lowres_cpu.yaml")
    assert low.model == high.model == distill.model == cpu.model
    assert high.init_from == f"runs/{low.run_name}"
    assert distill.init_from == distill.teacher == f"runs/{high.run_name}"
    assert distill.objective == "distill" and distill.sampling.num_denoising_steps == 1
    assert distill.sampling.context_from_last_step
    assert low.num_threads is None  # on a GPU the loop picks the host threads (GPU_HOST_THREADS)


def test_the_fine_tune_and_the_distillation_jitter_any_hue_on_cpu_and_gpu():
    # the leave-the-road-out measurement behind it is in docs/experiments.md ("Any hue in the fine-tune too")
    names = ("dit224_highres_cpu", "dit224_distill_cpu", "dit224_highres_gpu", "dit224_distill_gpu")
    augments = [
        load_config(TrainConfig, "conf/base.yaml", f"conf/{name}.yaml").data.augment for name in names
    ]
    assert all(a == augments[0] for a in augments)
    augment = augments[0]
    assert tuple(augment.hue_shift_deg) == (-180.0, 180.0) and tuple(augment.saturation_factor) == (0.5, 1.5)
    assert augment.colour_jitter_probability > 0 and augment.flip_probability > 0
    assert augment.scale_crop_probability > 0

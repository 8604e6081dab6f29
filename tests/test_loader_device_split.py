"""The loader reads, the training device encodes and augments.

Loader workers only copy slices of the memory-mapped shards (``ClipDataset.raw_batch_at``);
``finish_batch`` mirrors, jitters, encodes and augments a whole batch as torch ops wherever the
batch is (on a GPU inside the training step). Checked here on a real prepared clip (bikes.mp4):
what is read equals the shards read another way; finishing raw batches read in worker processes
gives exactly the batches of ``batch_at``; clips of a batch do not mix; and the augmentations
whose draws moved keep their effects and their rates.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file

from src.conditions.augment import AugmentConfig, ConditionAugmenter, _gaussian_blur
from src.conditions.spec import ConditionSpec
from src.data import prepared
from src.data.loader import ClipDataset, step_batches


def _clips(dataset, augment=None, **kwargs) -> ClipDataset:
    options = dict(split="train", clip_frames=4, crop=(24, 28), seed=11, frame_skip=(1, 3))
    return ClipDataset(dataset, augment=augment or AugmentConfig(), **(options | kwargs))


def _shard_frames(dataset, segment: dict, key: str) -> np.ndarray:
    """Every frame of one key of a segment, read with safetensors' own loader."""
    return np.concatenate([load_file(str(dataset / s["file"]))[key] for s in segment["shards"]])


def test_read_clips_equal_the_shards_and_skipped_flow_is_the_sum_of_the_frames_flows(tiny_dataset):
    clips = _clips(tiny_dataset)
    skips = set()
    for index in range(12):
        plan = clips._plan(index)
        raw = clips.raw_clip(index)
        ids, (rows, columns) = plan["frame_ids"], plan["window"]
        skips.add(plan["skip"])
        for key in ("frames", "albedo", "depth"):
            expected = _shard_frames(tiny_dataset, plan["segment"], key)[ids][:, rows, columns]
            assert raw[key].dtype == expected.dtype and np.array_equal(raw[key], expected)
        flows = _shard_frames(tiny_dataset, plan["segment"], "flow").astype(np.float32)[:, rows, columns]
        summed = np.stack([flows[max(0, i - plan["skip"] + 1) : i + 1].sum(0) for i in ids])
        assert np.array_equal(raw["flow"].astype(np.float32), summed)
    assert skips == {1, 2, 3}  # every skip was read, across shard borders too (16-frame shards)


def test_finishing_raw_batches_read_in_workers_gives_the_batches_of_batch_at(tiny_dataset):
    """What training on a GPU does (workers read, the step finishes), here on the CPU."""
    augment = dataclasses.replace(AugmentConfig(), flip_probability=0.5, colour_jitter_probability=0.5)
    clips = _clips(tiny_dataset, augment)
    raw = step_batches(functools.partial(clips.raw_batch_at, batch_size=3), start_index=2, num_workers=2)
    for step in (2, 3, 4):
        batch, expected = clips.finish_batch(next(raw)), clips.batch_at(step, 3)
        for key in ("frames", "cond", "index"):
            assert torch.equal(batch[key], expected[key]), key
    raw.close()


def test_the_clips_of_a_batch_do_not_mix(tiny_dataset):
    everything = {f.name: 1.0 for f in dataclasses.fields(AugmentConfig) if f.name.endswith("_probability")}
    clips = _clips(tiny_dataset, AugmentConfig(**(everything | {"channel_dropout_probability": 0.3})))
    batch = clips.batch_at(0, 4)
    for i in range(4):
        alone = clips[i]
        assert torch.equal(alone["frames"], batch["frames"][i])
        assert torch.allclose(alone["cond"], batch["cond"][i], atol=1e-6)


def _reference_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of ``n c h w`` by convolution with reflect padding (the blur the
    augmentations ran before they became matrix products)."""
    radius = max(1, math.ceil(2.5 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    pad_x, pad_y = min(radius, w - 1), min(radius, h - 1)
    k = kernel[radius - pad_x : radius + pad_x + 1]
    flat = F.conv2d(F.pad(flat, (pad_x, pad_x, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    k = kernel[radius - pad_y : radius + pad_y + 1]
    flat = F.conv2d(F.pad(flat, (0, 0, pad_y, pad_y), mode="reflect"), k.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5, 28.0])  # 28: the lighting's sigma at 224 px
def test_matrix_blur_equals_the_convolution_with_reflect_padding(sigma):
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_gaussian_blur(x, [sigma, sigma]), _reference_blur(x, sigma), atol=1e-5)


def test_noise_keeps_its_strength_and_each_clip_its_own_field():
    """The noise field comes from a per-clip seed instead of the clip's numpy stream: its
    standard deviation is still the drawn one, clips differ, and a seed gives one field."""
    spec = ConditionSpec()
    quiet = {f.name: 0.0 for f in dataclasses.fields(AugmentConfig) if f.name.endswith("_probability")}
    augmenter = ConditionAugmenter(AugmentConfig(**(quiet | {"noise_probability": 1.0})), spec)
    cond = torch.zeros(3, 2, spec.num_channels, 48, 48)
    cond[:, :, spec.slices()["normals"].start + 2] = 1.0  # unit normals facing the camera
    draws = [augmenter.draw(np.random.default_rng(seed)) for seed in range(3)]
    out = augmenter.apply(cond, draws)
    assert torch.equal(out, augmenter.apply(cond, draws))
    for clip, draw in enumerate(draws):
        noise = (out[clip] - cond[clip])[:, spec.slices()["albedo"]]  # away from the clipped range
        assert noise.std().item() == pytest.approx(draw.noise_std, rel=0.05)
        assert abs(noise.mean().item()) < 0.1 * draw.noise_std
    assert not torch.allclose(out[0], out[1])


def test_every_operation_fires_at_its_probability():
    """Draws are cheap (no noise field among them), so the rates can be counted over many clips."""
    config = AugmentConfig(channel_dropout_probability=0.2)
    augmenter = ConditionAugmenter(config, ConditionSpec())
    rng = np.random.default_rng(0)
    draws = [augmenter.draw(rng) for _ in range(4000)]
    for name, probability in (
        ("flatten_lighting_strength", config.flatten_lighting_probability),
        ("banding_levels", config.banding_probability),
        ("quantize_color_levels", config.quantize_color_probability),
        ("sharpen_amount", config.sharpen_probability),
        ("pixelate_factor", config.pixelate_probability),
        ("blur_sigma_px", config.blur_probability),
        ("posterize_levels", config.posterize_probability),
        ("noise_std", config.noise_probability),
        ("clip_level", config.clip_probability),
    ):
        rate = np.mean([getattr(d, name) is not None for d in draws])
        assert rate == pytest.approx(probability, abs=4 * math.sqrt(probability * (1 - probability) / 4000))
    blurs = [d.blur_sigma_px for d in draws if d.blur_sigma_px is not None]
    assert config.blur_sigma_px[0] <= min(blurs) and max(blurs) <= config.blur_sigma_px[1]
    dropped = np.mean([len(d.dropped) for d in draws]) / 4
    assert dropped == pytest.approx(0.2, abs=0.02)


def test_shards_map_without_reading(tiny_dataset):
    segment = prepared.segments(prepared.read_manifest(tiny_dataset), "train")[0]
    arrays = prepared.memory_map_shard(tiny_dataset / segment["shards"][0]["file"])
    loaded = load_file(str(tiny_dataset / segment["shards"][0]["file"]))
    assert set(arrays) == set(prepared.SHARD_KEYS)
    for key in prepared.SHARD_KEYS:
        assert isinstance(arrays[key], np.memmap)
        assert np.array_equal(arrays[key], loaded[key])


def test_training_data_finishing_on_the_device_gives_the_step_batches(tiny_dataset):
    """``TrainingData.batches`` as on a GPU (workers read, each batch is finished as it is taken),
    forced here on the CPU, for the second of two processes resumed at step 3."""
    from src.common.config import load_config
    from src.train.config import TrainConfig
    from src.train.data import TrainingData

    config = load_config(TrainConfig, "conf/base.yaml", "conf/cpu_tiny.yaml", overrides=[
        "--data.dataset", str(tiny_dataset), "--data.crop", "[32, 32]", "--data.batch_size", "2",
        "--data.num_workers", "1"])  # fmt: skip
    data = TrainingData(config, process_index=1, num_processes=2)
    batches = data.batches(3, device="cpu", finish_on_device=True)
    for index in (3, 4):
        batch, expected = next(batches), data.train_batch(index)
        assert torch.equal(batch["frames"], expected["frames"]) and torch.equal(
            batch["cond"], expected["cond"]
        )

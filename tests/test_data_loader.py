"""Clip loader: batch format, determinism, resuming the data position, validation clips."""

from __future__ import annotations

import pytest
import torch

from src.common.errors import UserError
from src.conditions.augment import AugmentConfig
from src.data.decode import split_index
from src.data.loader import ClipDataset, LoaderConfig, build_loader, build_loader_from_config
from src.data.prepare import PrepareConfig, prepare_dataset


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
    from src.data.sources import find_embedded_file

    try:
        bikes = find_embedded_file("bikes.mp4")
    except UserError as error:
        pytest.skip(str(error))
    out = tmp_path_factory.mktemp("data") / "prepared"
    prepare_dataset(
        PrepareConfig(
            videos=[str(bikes)], out=str(out), resolution="40x32", fps=10.0, end_s=3.0, shard_frames=8
        )
    )
    return out


def test_train_batches_have_the_documented_format(prepared_dir):
    loader = build_loader(
        prepared_dir, split="train", clip_frames=4, crop=24, batch_size=3, seed=0, frame_skip=(1, 2)
    )
    batch = next(iter(loader))
    assert batch["frames"].shape == (3, 4, 3, 24, 24) and batch["frames"].dtype == torch.float32
    assert batch["cond"].shape == (3, 4, 9, 24, 24) and batch["cond"].dtype == torch.float32
    for key in ("frames", "cond"):
        assert batch[key].min() >= -1 and batch[key].max() <= 1


def test_batch_at_step_is_deterministic_and_resumable(prepared_dir):
    kwargs = dict(split="train", clip_frames=2, crop=16, batch_size=2, seed=7)
    loader = build_loader(prepared_dir, **kwargs)
    iterator = iter(loader)
    batches = [next(iterator) for _ in range(3)]
    resumed = next(iter(build_loader(prepared_dir, **kwargs, start_step=2)))
    assert torch.equal(resumed["cond"], batches[2]["cond"]) and torch.equal(
        resumed["frames"], batches[2]["frames"]
    )
    dataset: ClipDataset = loader.dataset
    again = dataset.batch_at(1, 2)
    assert torch.equal(again["cond"], batches[1]["cond"]) and torch.equal(again["index"], batches[1]["index"])
    other_seed = next(iter(build_loader(prepared_dir, **(kwargs | {"seed": 8}))))
    assert not torch.equal(other_seed["frames"], batches[0]["frames"])


def test_val_clips_are_fixed_unaugmented_and_from_held_out_frames(prepared_dir):
    config = LoaderConfig(
        prepared_dir=str(prepared_dir), clip_frames=2, crop=32, batch_size=4, num_val_clips=5
    )
    loader = build_loader_from_config(config, split="val", seed=0, augment=AugmentConfig())
    batches = list(loader)
    assert sum(len(b["frames"]) for b in batches) == 5
    again = list(build_loader_from_config(config, split="val", seed=123))
    assert all(torch.equal(a["cond"], b["cond"]) for a, b in zip(batches, again))
    dataset = loader.dataset
    held_out = 30 - split_index(30, 0.15)  # 3 s at 10 fps
    assert dataset.augmenter is None and [s["num_frames"] for s in dataset.segments] == [held_out]


def test_bad_loader_arguments_are_user_errors(prepared_dir):
    with pytest.raises(UserError, match="multiple of 2"):
        build_loader(prepared_dir, split="train", clip_frames=3, crop=16, batch_size=1, seed=0)
    with pytest.raises(UserError, match="larger than the prepared frames"):
        build_loader(prepared_dir, split="train", clip_frames=2, crop=64, batch_size=1, seed=0)
    with pytest.raises(UserError, match="no prepared dataset"):
        build_loader(prepared_dir / "missing", split="train", clip_frames=2, crop=16, batch_size=1, seed=0)

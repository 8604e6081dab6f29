"""Clip loader: batch format, determinism, resuming the data position (in and out of worker
processes), validation clips."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.utils.data import DataLoader

from src.common.errors import UserError
from src.conditions.augment import AugmentConfig
from src.data.decode import split_index
from src.data.loader import ClipDataset, step_batches
from src.data.prepare import PrepareConfig, prepare_dataset


def _train_clips(prepared_dir, *, frame_skip=(1, 2), **kwargs) -> ClipDataset:
    """Training clips as the trainer makes them (augmented with the default AugmentConfig)."""
    return ClipDataset(prepared_dir, split="train", frame_skip=frame_skip, augment=AugmentConfig(), **kwargs)


def _train_batches(prepared_dir, *, batch_size, start_step=0, num_workers=0, **kwargs):
    dataset = _train_clips(prepared_dir, **kwargs)
    return step_batches(
        functools.partial(dataset.batch_at, batch_size=batch_size),
        start_index=start_step,
        num_workers=num_workers,
    ), dataset


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
    batches, _ = _train_batches(prepared_dir, clip_frames=4, crop=24, batch_size=3, seed=0, frame_skip=(1, 2))
    batch = next(batches)
    assert batch["frames"].shape == (3, 4, 3, 24, 24) and batch["frames"].dtype == torch.float32
    assert batch["cond"].shape == (3, 4, 9, 24, 24) and batch["cond"].dtype == torch.float32
    for key in ("frames", "cond"):
        assert batch[key].min() >= -1 and batch[key].max() <= 1


def test_batch_at_step_is_deterministic_and_resumable(prepared_dir):
    kwargs = dict(clip_frames=2, crop=16, batch_size=2, seed=7)
    iterator, dataset = _train_batches(prepared_dir, **kwargs, num_workers=2)  # read in worker processes
    batches = [next(iterator) for _ in range(3)]
    resumed = next(_train_batches(prepared_dir, **kwargs, start_step=2)[0])
    assert torch.equal(resumed["cond"], batches[2]["cond"]) and torch.equal(
        resumed["frames"], batches[2]["frames"]
    )
    again = dataset.batch_at(1, 2)
    assert torch.equal(again["cond"], batches[1]["cond"]) and torch.equal(again["index"], batches[1]["index"])
    other_seed = next(_train_batches(prepared_dir, **(kwargs | {"seed": 8}))[0])
    assert not torch.equal(other_seed["frames"], batches[0]["frames"])


def test_val_clips_are_fixed_unaugmented_and_from_held_out_frames(prepared_dir):
    def val_loader(seed: int, augment: AugmentConfig | None = None) -> DataLoader:
        clips = ClipDataset(
            prepared_dir, split="val", clip_frames=2, crop=32, seed=seed, augment=augment, num_val_clips=5
        )
        return DataLoader(clips, batch_size=4, shuffle=False)

    loader = val_loader(0, AugmentConfig())
    batches = list(loader)
    assert sum(len(b["frames"]) for b in batches) == 5
    again = list(val_loader(123))
    assert all(torch.equal(a["cond"], b["cond"]) for a, b in zip(batches, again))
    dataset = loader.dataset
    held_out = 30 - split_index(30, 0.15)  # 3 s at 10 fps
    assert dataset.augmenter is None and [s["num_frames"] for s in dataset.segments] == [held_out]


def test_bad_loader_arguments_are_user_errors(prepared_dir):
    with pytest.raises(UserError, match="multiple of 2"):
        _train_clips(prepared_dir, clip_frames=3, crop=16, seed=0)
    with pytest.raises(UserError, match="larger than the prepared frames"):
        _train_clips(prepared_dir, clip_frames=2, crop=64, seed=0)
    with pytest.raises(UserError, match="no prepared dataset"):
        _train_clips(prepared_dir / "missing", clip_frames=2, crop=16, seed=0)

"""prepare_data streams a video (decode -> a raw frame file -> one shard at a time) instead of holding
it whole: memory flat in the video's length, and the same shards as extracting from the whole video."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from src.conditions.extract import Extractor
from src.conditions.flat_color import FIT_FRAMES, fit_frame_indices
from src.data import prepared
from src.data.decode import decode_video, split_index
from src.data.prepare import PrepareConfig, prepare_dataset


def test_the_palette_sample_is_bounded_evenly_spaced_and_all_of_a_short_video():
    assert list(fit_frame_indices(5)) == [0, 1, 2, 3, 4]
    assert list(fit_frame_indices(FIT_FRAMES)) == list(range(FIT_FRAMES))
    for n in (17, 100, 14_400):
        picks = fit_frame_indices(n)
        assert len(picks) == FIT_FRAMES and picks[0] == 0 and picks[-1] == n - 1
        assert np.all(np.diff(picks) > 0)


def test_streamed_shards_equal_extraction_from_the_whole_video(tmp_path, bikes):
    # 4 s at 10 fps: 34 training frames, more than the palette's 16-frame sample
    config = PrepareConfig(videos=[str(bikes)], out=str(tmp_path / "prepared"), resolution="32x24", fps=10.0,
                           end_s=4.0, shard_frames=6)  # fmt: skip
    (record,) = prepare_dataset(config)["videos"]

    # the whole-video way this replaced: decode all, fit the palette on all training frames
    frames = decode_video(bikes, config.decode_config())
    first_val = split_index(len(frames), config.val_fraction)
    assert record["num_frames"] == len(frames) == 40 and record["split_index"] == first_val
    extractor = Extractor(config.extract)
    extractor.fit(frames[:first_val])
    folder = tmp_path / "prepared" / "videos" / record["id"]
    for shard in record["shards"]:
        start, stop = shard["start"], shard["start"] + shard["num_frames"]
        previous = frames[start - 1] if start > 0 and start != first_val else None
        expected = extractor.extract(frames[start:stop], previous) | {"frames": frames[start:stop]}
        written = prepared.read_shard_arrays(folder / shard["file"])
        for name, array in expected.items():
            stored = array.astype(prepared.STORED_DTYPES[name])  # as write_shard stores it (float16 depth)
            np.testing.assert_array_equal(written[name], stored, err_msg=f"{shard['file']}: {name}")
    # nothing but the shards and the record is left in the video's folder (no temporary frame file)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [s["file"] for s in record["shards"]] + ["video.json"]
    )


def _peak_bytes(out, bikes, frames: int) -> int:
    """tracemalloc's peak over preparing ``frames`` frames of bikes.mp4 at 96x96 into a new folder."""
    config = PrepareConfig(videos=[str(bikes)], out=str(out), resolution="96x96",
                           fps=25.0, max_frames=frames, shard_frames=16)  # fmt: skip
    tracemalloc.start()
    try:
        manifest = prepare_dataset(config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest["videos"][0]["num_frames"] == frames
    return peak


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_videos_length(tmp_path, bikes):
    # both lengths fill whole 16-frame shards, so only the number of shards differs between them
    short, long = 64, 224  # frames of bikes.mp4 (25 fps) at 96x96: 27 KB each
    _peak_bytes(tmp_path / "warm-up", bikes, short)  # one-time allocations (imports) out of the comparison
    short_peak = _peak_bytes(tmp_path / "short", bikes, short)
    long_peak = _peak_bytes(tmp_path / "long", bikes, long)
    whole_video_growth = (long - short) * 96 * 96 * 3  # what holding the decoded video would add: 4.4 MB
    assert long_peak - short_peak < whole_video_growth / 4, (short_peak, long_peak)

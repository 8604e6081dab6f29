"""data.source_weights: training clips drawn per video by weight, not in proportion to frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from src.common.errors import UserError
from src.common.video import write_mp4
from src.data.weights import video_weights

VIDEOS = [
    {"id": "vtest-1a2b3c4d", "source": "/usr/share/doc/opencv-doc/examples/data/vtest.avi"},
    {"id": "city_street_pandaset002_front-99", "source": "/data/city/city_street_pandaset002_front.mp4"},
    {"id": "city_street_pandaset002_back_reversed-98", "source": "/data/city/city_street_pandaset002_back_reversed.mp4"},
    {"id": "ride-77", "source": "/cache/ride.mp4", "url": "https://host/ride.mp4"},
]  # fmt: skip


def test_the_first_matching_pattern_gives_each_video_its_weight():
    weights = video_weights(VIDEOS, {"city_street_*_front": 3, "city_*": 2, "https://host/*": 0.5, "*": 1})
    assert list(weights.values()) == [1.0, 3.0, 2.0, 0.5]
    assert video_weights(VIDEOS, {"vtest.avi": 0, "*": 1})["vtest-1a2b3c4d"] == 0.0  # by file name


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"city_*": 1}, "video vtest.avi matches none"),
        ({"*": 1, "city_*": 2}, r"\['city_\*'\] match no video"),
        ({"typo*": 1, "*": 1}, r"\['typo\*'\] match no video"),
        ({"vtest*": -1, "*": 1}, "must be 0 or more"),
        ({"*": 0}, "every data.source_weights weight is 0"),
    ],
)
def test_bad_weights_are_one_clear_error(weights, message):
    with pytest.raises(UserError, match=message) as caught:
        video_weights(VIDEOS, weights)
    assert "\n" not in caught.value.one_line()


@pytest.fixture(scope="module")
def long_and_short(tmp_path_factory) -> Path:
    """A 60-frame and a 12-frame video prepared at 16x16 (every frame in train)."""
    from src.data.prepare import PrepareConfig, prepare_dataset

    folder = tmp_path_factory.mktemp("weights")
    rng = np.random.default_rng(0)
    videos = []
    for name, frames in (("mall_long", 60), ("street_short", 12)):
        pixels = rng.integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8)
        videos.append(str(write_mp4(folder / f"{name}.mp4", pixels, fps=10.0)))
    out = folder / "prepared"
    prepare_dataset(PrepareConfig(videos=videos, out=str(out), resolution="16x16", val_fraction=0.0))
    return out


def _share_of_short(dataset: Path, source_weights) -> float:
    from src.data.loader import ClipDataset

    clips = ClipDataset(dataset, split="train", clip_frames=4, crop=16, seed=0, source_weights=source_weights)
    videos = [clips.clip_source(index)[0] for index in range(2000)]
    return float(np.mean([v.startswith("street_short") for v in videos]))


def test_weights_replace_the_frame_proportional_draw(long_and_short):
    assert abs(_share_of_short(long_and_short, None) - 12 / 72) < 0.03  # today: by frames
    assert abs(_share_of_short(long_and_short, {"street_*": 1, "*": 1}) - 0.5) < 0.04
    assert abs(_share_of_short(long_and_short, {"street_*": 3, "mall_*": 1}) - 0.75) < 0.04
    assert _share_of_short(long_and_short, {"mall_*": 0, "*": 1}) == 1.0


def test_the_training_config_carries_them_from_yaml(tmp_path):
    from src.common.config import parse_config
    from src.train.config import TrainConfig

    assert parse_config(TrainConfig, []).data.source_weights == {}
    layer = tmp_path / "weights.yaml"
    layer.write_text('data:\n  source_weights: {"city_*": 2, "*": 1}\n')
    config = parse_config(TrainConfig, ["--conf", str(layer)])
    assert config.data.source_weights == {"city_*": 2.0, "*": 1.0}
    assert list(config.data.source_weights) == ["city_*", "*"]  # the order decides the first match

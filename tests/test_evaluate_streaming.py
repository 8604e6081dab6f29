"""Real clips are scored one at a time (src/eval/streaming.py): the numbers are the ones all the
frames at once give, and what is held does not grow with the number of clips."""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from src.conditions.spec import ConditionSpec
from src.conditions.warp import warp_error_mask
from src.eval import streaming
from src.eval.inception import frechet_inception_distance, kernel_inception_distance
from src.eval.metrics import (
    grid_peak,
    psnr,
    seam_ratio,
    sliced_wasserstein_distance,
    ssim,
    temporal_warp_error,
)
from src.eval.scoring import FeatureScorer, load_real_clips, open_real_clips, score_game_ride
from src.eval.streaming import GridPowerSums, RealReference, flat_colour, score_real_clips, to_unit

ROOT = Path(__file__).resolve().parents[1]
SPEC = ConditionSpec()


class NoisyRenderer:
    """A stand-in renderer: the albedo planes, darkened, plus seeded noise (unlike the flat input)."""

    frames_per_step = 2

    def reset(self, seed=None):
        self.generator = torch.Generator().manual_seed(seed or 0)

    def step(self, cond):
        albedo = flat_colour(torch.as_tensor(cond), SPEC)
        noise = torch.randn(albedo.shape, generator=self.generator) * 0.1
        return (albedo * 0.8 + noise).clamp(-1, 1).numpy()


class _CheapInception:
    def features(self, frames):
        pooled = torch.nn.functional.adaptive_avg_pool2d(frames.double(), 8)  # n 3 8 8
        return pooled.flatten(1).repeat(1, 11)[:, :2048].clone()

    __call__ = features


class CheapFeatures(FeatureScorer):
    """A FeatureScorer whose per-frame 'features' and 'distances' cost nothing."""

    def __init__(self):
        self.inception = _CheapInception()
        self.lpips = lambda a, b: (a - b).abs().mean(dim=(1, 2, 3))


def _clips(dataset, count):
    return load_real_clips(dataset, split="train", clip_frames=4, num_clips=count, spec=SPEC, stats=None)


def test_streamed_scores_equal_the_scores_of_all_frames_at_once(tiny_dataset):
    clips = _clips(tiny_dataset, 5)
    renderer, features = NoisyRenderer(), CheapFeatures()
    scores = score_real_clips(renderer, clips, spec=SPEC, features=features, gap_frames=7)
    generated, flat, real = [], [], []
    for index, clip in enumerate(clips):  # the old way: every frame kept, scored at the end
        renderer.reset(index)
        frames = [renderer.step(clip["cond"][i : i + 2]) for i in range(0, 4, 2)]
        generated.append(to_unit(torch.from_numpy(np.concatenate(frames))))
        flat.append(to_unit(flat_colour(clip["cond"], SPEC)))
        real.append(to_unit(clip["frames"]))
    g, f, r = torch.cat(generated), torch.cat(flat), torch.cat(real)
    m = scores.metrics
    assert m["real_psnr"] == pytest.approx(np.mean([psnr(a, b) for a, b in zip(generated, real)]), rel=1e-12)
    assert m["real_flat_ssim"] == pytest.approx(np.mean([ssim(a, b) for a, b in zip(flat, real)]), rel=1e-12)
    warps = [temporal_warp_error(a, c["flow_px"], valid_mask=warp_error_mask(c["flow_px"], forward_flow_px=c["forward_flow_px"]))
             for a, c in zip(generated, clips)]  # fmt: skip
    assert m["real_warp_error"] == pytest.approx(np.mean(warps), rel=1e-12)
    assert m["real_swd"] == sliced_wasserstein_distance(g, r)["mean"]  # exactly: every clip fits
    assert m["real_flat_swd"] == sliced_wasserstein_distance(f, r)["mean"]
    assert m["num_real_swd_frames"] == 20
    assert m["real_seam_ratio"] == pytest.approx(seam_ratio(g), rel=1e-5)
    assert m["real_video_seam_ratio"] == pytest.approx(seam_ratio(r), rel=1e-5)
    assert m["real_grid_peak"] == pytest.approx(grid_peak(g), rel=1e-4)
    assert m["real_flat_grid_peak"] == pytest.approx(grid_peak(f), rel=1e-4)
    ours, theirs = features.inception(g), features.inception(r)
    assert m["real_kid"] == pytest.approx(kernel_inception_distance(ours, theirs)["mean"], rel=1e-9)
    assert m["real_fid"] == frechet_inception_distance(ours, theirs)  # None: too few frames
    assert m["real_lpips"] == pytest.approx(float(features.lpips(g, r).mean()), rel=1e-6)
    # the condition gap sees the frames it would pick from all of them, evenly spread
    cond = torch.cat([clip["cond"] for clip in clips]).numpy()
    assert np.array_equal(scores.gap_cond, cond[streaming.evenly(20, 7)])
    assert [c["start"] for c in scores.clips] == [clip["start"] for clip in clips]
    # a game ride scored against the kept reference gets the numbers all real frames give
    ride = {"cond": clips[0]["cond"], "raster": clips[0]["frames"], "flow_px": clips[0]["flow_px"]}
    against_all, _ = score_game_ride(renderer, ride, spec=SPEC, real_frames=r, features=features)
    against_kept, _ = score_game_ride(
        renderer, ride, spec=SPEC, real_frames=scores.real_frames, features=features
    )
    assert against_kept == against_all


def test_swd_against_the_first_frames_of_a_reference_equals_swd_against_all_of_it():
    generator = torch.Generator().manual_seed(3)
    ours, reference = (
        torch.rand(6, 3, 32, 32, generator=generator),
        torch.rand(20, 3, 32, 32, generator=generator),
    )
    whole = sliced_wasserstein_distance(ours, reference)
    assert sliced_wasserstein_distance(ours, reference[:6], reference_count=20) == whole
    assert RealReference(reference[:8], 20).swd(ours) == whole["mean"]


def test_the_grid_spectrum_summed_a_clip_at_a_time_is_the_spectrum_of_all_frames():
    frames = torch.rand(12, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    sums = GridPowerSums()
    for part in frames.split(5):
        sums.add(part)
    assert sums.peak() == pytest.approx(grid_peak(frames), rel=1e-5)


def _tensor_bytes() -> int:
    """Bytes of every CPU tensor alive now (each storage once)."""
    storages = {}
    with warnings.catch_warnings():  # isinstance on some of torch's deprecated module objects warns
        warnings.simplefilter("ignore", FutureWarning)
        tensors = [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    for tensor in tensors:
        if tensor.device.type == "cpu":
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _peak_bytes_while_scoring(dataset, count, monkeypatch) -> tuple[int, int]:
    peak = []
    original = streaming.render_clip

    def counting(renderer, cond, *, seed=None):
        out = original(renderer, cond, seed=seed)
        peak.append(_tensor_bytes())
        return out

    monkeypatch.setattr(streaming, "render_clip", counting)
    gc.collect()
    clips = open_real_clips(dataset, split="train", clip_frames=4, num_clips=count, spec=SPEC, stats=None)
    scores = score_real_clips(NoisyRenderer(), clips, spec=SPEC,
                              swd_max_frames=4, reference_frames=4, keep_rows=1, gap_frames=4)  # fmt: skip
    assert scores.metrics["num_real_swd_frames"] == 4 and len(scores.rows) == 1
    peak.append(_tensor_bytes())
    return max(peak), len(scores.clips)


@pytest.mark.slow
def test_memory_does_not_grow_with_the_number_of_clips(tiny_dataset, monkeypatch):
    few, _ = _peak_bytes_while_scoring(tiny_dataset, 3, monkeypatch)
    many, scored = _peak_bytes_while_scoring(tiny_dataset, 18, monkeypatch)
    assert scored == 18
    one_clip = 4 * 3 * 32 * 32 * 4  # bytes of one clip's frames of one set
    assert many <= few + one_clip, (few, many)  # (all of them kept: 15 more clips of 3 sets and more)


def test_a_game_ride_too_long_to_hold_is_refused_before_torch_loads(tmp_path):
    code = (
        "import sys\n"
        "from src.scripts.evaluate import main\n"
        "try:\n"
        f"    main(['--data', {str(tmp_path)!r}, '--game_frames', '100000000'])\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "exit 2 False", done.stderr
    assert done.stderr.strip() == (
        "error: invalid --game_frames 100000000: out of range, game_frames must be >= 0 and <= 4096. "
        "Change it on the command line or in the --conf file that sets it."
    )


def test_swd_patches_are_the_ones_unfold_gives_without_every_position_held():
    """SWD copies only its chosen patches (F.unfold of 400 frames of 128x128 held 3.5 GB)."""
    from src.eval.metrics import _patch_descriptors

    level = torch.rand(5, 3, 40, 37, generator=torch.Generator().manual_seed(0))
    patches = torch.nn.functional.unfold(level, 7)  # n (c p p) L: every position
    index = torch.randint(0, patches.shape[-1], (9, 128), generator=torch.Generator().manual_seed(1))[:5]
    expected = torch.gather(patches, 2, index[:, None, :].expand(-1, patches.shape[1], -1))
    chosen = _patch_descriptors(level, 7, 128, torch.Generator().manual_seed(1), draws=9)
    assert torch.equal(chosen, expected.permute(0, 2, 1).reshape(-1, patches.shape[1]))

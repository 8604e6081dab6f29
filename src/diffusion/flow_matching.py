"""Flow-matching maths shared by every Velodream denoiser (teacher DiT, few-step DiT, student).

Conventions (rectified flow, as in SD3):

    x_sigma = (1 - sigma) * x0 + sigma * eps,      sigma in [0, 1], eps ~ N(0, I)

sigma = 1 is pure noise, sigma = 0 is the clean frame. Every denoiser here is an
*x-prediction* callable ``denoiser(x_noisy, sigma) -> x0_pred`` (see ``src/net/README.md``
for why: in pixel space the clean frame lies near a low-dimensional manifold while the
velocity ``eps - x0`` and the noise do not, so predicting x0 is the easier target for a
small network, and a residual on the flat-colour condition is only natural in x0 space).

Sigmas may be one per sample (``b``) or one per framelet (``b n``) for video tensors
``b t ...`` with ``t = n * frames_per_framelet`` (diffusion forcing: every framelet of a
training clip gets its own noise level). ``expand_sigma`` broadcasts either form.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

Denoiser = Callable[[Tensor, Tensor], Tensor]


def expand_sigma(sigma: Tensor | float, like: Tensor) -> Tensor:
    """Broadcast ``sigma`` (scalar, ``b`` or ``b n``) onto ``like`` (``b ...`` or ``b t ...``).

    A ``b n`` sigma on a ``b t ...`` tensor is repeated over the ``t // n`` frames of each
    framelet, so ``n`` must divide ``t``.
    """
    sigma = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if sigma.ndim == 0:
        return sigma
    if sigma.ndim == 1:
        return sigma.reshape(sigma.shape[0], *([1] * (like.ndim - 1)))
    if sigma.ndim == 2:
        b, n = sigma.shape
        t = like.shape[1]
        if t % n:
            raise ValueError(f"{n} framelet sigmas do not divide {t} frames")
        sigma = sigma.repeat_interleave(t // n, dim=1)  # b t
        return sigma.reshape(b, t, *([1] * (like.ndim - 2)))
    raise ValueError(f"sigma must be a scalar, (b,) or (b, n), got shape {tuple(sigma.shape)}")


def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor | float) -> Tensor:
    """``x_sigma = (1 - sigma) x0 + sigma noise`` with per-sample or per-framelet sigma."""
    s = expand_sigma(sigma, x0)
    return (1.0 - s) * x0 + s * noise


def randn_like_on(shape, *, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Normal noise of ``shape`` on ``like``'s device and dtype, a function of ``generator``'s
    state. Where ``generator`` lives on that device it draws the noise itself (on a CPU: the
    numbers it always gave). A CPU generator feeding a model on a GPU instead seeds a generator
    there, which draws it: drawing frame-sized noise on the host and copying it over took a third
    of a GPU training step's host time (README.md, "Training on a GPU")."""
    if generator is None:
        return torch.randn(tuple(shape), device=like.device, dtype=like.dtype)
    if generator.device != like.device:
        seed = int(torch.randint(1 << 62, (1,), generator=generator, device=generator.device))
        generator = torch.Generator(device=like.device).manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, device=like.device, dtype=like.dtype)


def sample_sigmas_logit_normal(
    shape: tuple[int, ...] | torch.Size,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Training noise levels ``sigma = sigmoid(mean + std * n)``, ``n ~ N(0, 1)`` (SD3, eq. 19).

    Pass ``shape=(b, n)`` for one independent level per framelet (diffusion forcing).
    """
    gen_device = generator.device if generator is not None else device
    normal = torch.randn(tuple(shape), generator=generator, device=gen_device)
    sigma = torch.sigmoid(mean + std * normal)
    return sigma if device is None else sigma.to(device)


def time_shift(sigma: Tensor | float, shift: float) -> Tensor | float:
    """SD3's resolution shift ``sigma' = shift sigma / (1 + (shift - 1) sigma)``.

    ``shift > 1`` moves mass towards high noise, which larger images need because their
    neighbouring pixels stay correlated (and hence readable) under the same per-pixel noise.
    Maps 0 -> 0 and 1 -> 1.
    """
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def resolution_shift(num_pixels: int, base_pixels: int = 64 * 64, base_shift: float = 1.0) -> float:
    """Shift for an image of ``num_pixels`` pixels: ``base_shift * sqrt(num_pixels / base_pixels)``.

    The square root follows SD3 (Sec. 5.3.2): the signal-to-noise ratio of a pixel
    neighbourhood scales with the number of pixels, and sqrt keeps log-SNR matched.
    The default makes 64x64 unshifted (the CPU preset's training size).
    """
    return base_shift * math.sqrt(num_pixels / base_pixels)


def make_sigmas(num_steps: int, shift: float = 1.0, *, device: torch.device | str | None = None) -> Tensor:
    """Explicit sampling schedule: ``num_steps + 1`` decreasing sigmas from 1 to exactly 0.

    The uniform grid is time-shifted; the last entry is 0, so the last Euler step returns the
    model's x0 prediction (no wasted step at sigma ~ 0.009 as in diffusers' default).
    """
    if num_steps < 1:
        raise ValueError("num_steps must be at least 1")
    sigmas = torch.linspace(1.0, 0.0, num_steps + 1, device=device, dtype=torch.float64)
    sigmas = time_shift(sigmas, shift)
    sigmas[-1] = 0.0
    return sigmas.to(torch.float32)


def euler_sample(
    denoiser: Callable[[Tensor, Tensor, int], Tensor],
    x_init: Tensor,
    sigmas: Tensor,
    *,
    callback: Callable[[int, Tensor, Tensor], None] | None = None,
) -> Tensor:
    """Integrate the probability-flow ODE from ``sigmas[0]`` to ``sigmas[-1]`` with Euler steps:
    the one sampler of every denoiser here (the rollout, the benchmarks, the tests).

    ``denoiser(x, sigma, step)`` gets ``sigma`` as a ``(b,)`` tensor and the step's index, and
    returns x0. With x-prediction the ODE velocity is ``(x - x0) / sigma``, so an Euler step is

        x_{i+1} = x0 + (sigma_{i+1} / sigma_i) (x_i - x0),

    which is exact for a perfect denoiser of a single point. ``callback(i, x_i, x0_i)`` sees
    every step (e.g. to take the state at a chosen step). ``x_init`` should be
    ``sigmas[0]``-noisy (pure noise when ``sigmas[0] == 1``). It runs in the caller's grad mode
    (the distillation's rollout trains through one of its steps).
    """
    x = x_init
    batch = x.shape[0]
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        sigma_batch = torch.full((batch,), sigma, dtype=x.dtype, device=x.device)
        x0 = denoiser(x, sigma_batch, i)
        if callback is not None:
            callback(i, x, x0)
        x = x0 + (sigma_next / sigma) * (x - x0) if sigma > 0 else x0
    return x


class FlowMatchingLoss:
    """Flow-matching loss for an x-predicting denoiser, per framelet noise levels.

    With ``x_sigma = (1 - sigma) x0 + sigma eps`` the target velocity is ``v = eps - x0`` and
    the velocity implied by an x0 prediction is ``v_hat = (x_sigma - x0_hat) / sigma``, so

        "velocity" weighting (default, JiT, Li & He 2025, eq. 6):
            L = E || v_hat - v ||^2 = E || x0_hat - x0 ||^2 / max(sigma, sigma_min)^2
        "x0" weighting:
            L = E || x0_hat - x0 ||^2

    The velocity loss is the standard rectified-flow objective (equal weight on every
    ODE-velocity error) while the network still outputs the clean frame; ``sigma_min`` (0.05)
    clips the ``1 / sigma^2`` weight so nearly clean context framelets cannot dominate.
    ``framelet_weight`` (``b n``, e.g. 0 for framelets used only as context) scales each
    framelet's term; the result is the mean over weighted elements.
    """

    def __init__(self, *, weighting: str = "velocity", sigma_min: float = 0.05):
        if weighting not in ("velocity", "x0"):
            raise ValueError(f"weighting must be 'velocity' or 'x0', got {weighting!r}")
        self.weighting = weighting
        self.sigma_min = sigma_min

    def __call__(
        self,
        x0_pred: Tensor,
        x0: Tensor,
        sigma: Tensor,
        *,
        framelet_weight: Tensor | None = None,
    ) -> Tensor:
        err = (x0_pred.float() - x0.float()).square()  # b t c h w
        weight = torch.ones_like(sigma, dtype=torch.float32)
        if self.weighting == "velocity":
            weight = weight / sigma.float().clamp(min=self.sigma_min).square()
        if framelet_weight is not None:
            weight = weight * framelet_weight.float()
        w = expand_sigma(weight, err).expand_as(err)
        if framelet_weight is None:
            return (err * w).mean()
        # mean over the elements of weighted framelets, weighted by framelet_weight
        denominator = expand_sigma(framelet_weight.float(), err).expand_as(err).sum().clamp(min=1e-8)
        return (err * w).sum() / denominator

"""Quality metrics for generated frames. All take float tensors in [0, 1] (or [-1, 1] where said).

- ``psnr`` / ``ssim``: reconstruction of held-out real frames. Both reward blurry averages.
- ``temporal_warp_error``: how much consecutive generated frames disagree after warping the
  previous one by the exact motion (the game's flow): flicker and drift (Lai et al. 2018).
  Pixels that the flow cannot explain are left out: sources outside the frame always, and, with
  a ``valid_mask`` from ``warp_error_mask`` (``src/conditions/warp.py``), occlusions (the forward-backward flow check, or
  ``depth_test_mask`` on game rides) and motion boundaries. A frozen or blurry output scores well on it: pair it with a realism measure.
- ``sliced_wasserstein_distance``: a weight-free realism measure, the multi-scale sliced
  Wasserstein distance between local patch statistics of two image sets (Karras et al. 2018,
  "Progressive Growing of GANs", section 5): Laplacian pyramid, 7x7 patches normalised per
  channel *with the reference (real) set's statistics*, random projections, 1-D Wasserstein
  distances averaged over projections.
- ``seam_ratio``: how much stronger the jumps between neighbouring pixels are across the lines
  of a pixel grid (a patch grid) than everywhere else; 1.0 = no seams at that grid.
- ``grid_peaks``: the power of the frames' spectrum at the frequencies of a p-pixel grid
  (p = 2, 4, 8, 16: checkerboards and seams a PixelShuffle or a patchify draws) over the median
  power at nearby radii in the same direction; 1-10 for natural frames, far above where a grid is drawn.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from src.conditions.warp import backward_warp, warp_valid_mask


def psnr(prediction: torch.Tensor, target: torch.Tensor, *, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all elements."""
    mse = torch.mean((prediction.float() - target.float()) ** 2).clamp_min(1e-12)
    return float(10.0 * torch.log10(max_value**2 / mse))


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    window = g[:, None] * g[None, :]
    return window.expand(channels, 1, size, size).contiguous()


def ssim(prediction: torch.Tensor, target: torch.Tensor, *, max_value: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004, 11x11 Gaussian window, sigma 1.5), averaged.

    Inputs are ``... c h w``; leading dimensions are flattened into the batch.
    """
    x = prediction.float().reshape(-1, *prediction.shape[-3:])
    y = target.float().reshape(-1, *target.shape[-3:])
    channels = x.shape[1]
    size = min(11, x.shape[-1], x.shape[-2])
    window = _gaussian_window(size, 1.5, channels)
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sigma_x = blur(x * x) - mu_x**2
    sigma_y = blur(y * y) - mu_y**2
    sigma_xy = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2)
    )
    return float(ssim_map.mean())


def temporal_warp_error(
    frames: torch.Tensor, flow_px: torch.Tensor, *, valid_mask: torch.Tensor | None = None
) -> float:
    """Mean absolute difference between frame t and frame t-1 warped by the flow of frame t.

    ``frames``: ``t c h w`` in [0, 1]; ``flow_px``: ``t h w 2`` (flow of frame t, x_t - x_{t-1};
    entry 0 is unused). Pixels that enter from outside the frame are always ignored;
    ``valid_mask`` (``t h w``, 1 = compare, entry 0 unused; e.g. ``warp_error_mask`` or a depth
    test) leaves out occluded pixels and motion boundaries as well.
    """
    if frames.shape[0] < 2:
        raise ValueError("temporal warp error needs at least two frames")
    previous, current, flow = frames[:-1], frames[1:], flow_px[1:].float()
    warped = backward_warp(previous, flow)
    mask = warp_valid_mask(flow)  # b 1 h w
    if valid_mask is not None:
        mask = mask * valid_mask[1:, None].float()
    error = (warped - current.float()).abs().mean(dim=1, keepdim=True) * mask
    return float(error.sum() / mask.sum().clamp_min(1.0))


def _laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    pyramid = []
    current = images
    for _ in range(levels - 1):
        down = F.avg_pool2d(current, 2)
        up = F.interpolate(down, size=current.shape[-2:], mode="bilinear", align_corners=False)
        pyramid.append(current - up)
        current = down
    pyramid.append(current)
    return pyramid


def _patch_descriptors(
    level: torch.Tensor, patch: int, per_image: int, generator: torch.Generator, *, draws: int | None = None
) -> torch.Tensor:
    """``per_image`` random patches of each image; ``draws``: positions are drawn for that many
    images (``level`` holds the first of them), as if all were given."""
    n, c, h, w = level.shape
    if h < patch or w < patch:
        return level.new_zeros(0, c * patch * patch)
    out_w = w - patch + 1
    count = (h - patch + 1) * out_w  # patch positions: the columns F.unfold would make
    index = torch.randint(0, count, (draws or n, min(per_image, count)), generator=generator)[:n]
    # only the chosen patches are copied (F.unfold would hold every position of every image:
    # gigabytes for a few hundred frames); the same values in unfold's (c p p) order
    offsets = torch.arange(patch)
    rows = (index // out_w)[..., None, None] + offsets[:, None]  # n k p 1
    cols = (index % out_w)[..., None, None] + offsets[None, :]  # n k 1 p
    chosen = level[torch.arange(n)[:, None, None, None], :, rows, cols]  # n k p p c
    return chosen.permute(0, 1, 4, 2, 3).reshape(-1, c * patch * patch)


def _normalise_by_reference(
    descriptors: torch.Tensor, reference: torch.Tensor, *, channels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both ``n (c p p)`` descriptor sets minus the reference's per-channel mean, divided by its
    per-channel standard deviation (pooled over patch positions, as progressive GAN does)."""
    grouped = reference.reshape(len(reference), channels, -1)  # n c (p p)
    mean = grouped.mean(dim=(0, 2))
    std = grouped.std(dim=(0, 2)).clamp_min(1e-6)
    mean = mean.repeat_interleave(grouped.shape[-1])  # (c p p), matching unfold's channel-major order
    std = std.repeat_interleave(grouped.shape[-1])
    return (descriptors - mean) / std, (reference - mean) / std


def sliced_wasserstein_distance(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    *,
    levels: int = 3,
    patch: int = 7,
    patches_per_image: int = 128,
    num_projections: int = 128,
    seed: int = 0,
    reference_count: int | None = None,
) -> dict[str, float]:
    """Multi-scale SWD of images ``images_a`` (generated) to the reference set ``images_b``
    (real), both ``n c h w`` in [0, 1] (lower = more alike).

    SWD compares as many descriptors as the smaller set has, the first ones: ``images_b`` may be
    the first frames of a reference set of ``reference_count`` frames, which gives the distance
    to all of them while it holds at least as many frames as ``images_a``.

    Descriptors of both sets are normalised per channel with the *reference* set's mean and
    standard deviation (not each set's own, which would hide a global colour or contrast bias of
    the generated frames, and not both together, which would make distances of two generated
    sets to the same real set incomparable). Returns one distance per pyramid level (finest
    first, ``level_0`` ...) and their ``mean``, each multiplied by 1e3 as in the
    progressive-GAN paper's tables.
    """
    generator = torch.Generator().manual_seed(seed)
    levels = max(1, min(levels, int(torch.log2(torch.tensor(min(images_a.shape[-2:]) / patch)).item()) + 1))
    pyramid_a = _laplacian_pyramid(images_a.float(), levels)
    pyramid_b = _laplacian_pyramid(images_b.float(), levels)
    result: dict[str, float] = {}
    for index, (level_a, level_b) in enumerate(zip(pyramid_a, pyramid_b)):
        desc_a = _patch_descriptors(level_a, patch, patches_per_image, generator)
        desc_b = _patch_descriptors(level_b, patch, patches_per_image, generator, draws=reference_count)
        count = min(len(desc_a), len(desc_b))
        if count == 0:
            continue
        desc_a, desc_b = desc_a[:count], desc_b[:count]
        desc_a, desc_b = _normalise_by_reference(desc_a, desc_b, channels=level_b.shape[1])
        directions = torch.randn(desc_a.shape[1], num_projections, generator=generator)
        directions = directions / directions.norm(dim=0, keepdim=True)
        proj_a = torch.sort(desc_a @ directions, dim=0).values
        proj_b = torch.sort(desc_b @ directions, dim=0).values
        result[f"level_{index}"] = float((proj_a - proj_b).abs().mean() * 1e3)
    result["mean"] = float(sum(result.values()) / max(1, len(result)))
    return result


def seam_ratio(frames: torch.Tensor, *, grid: int = 8) -> float:
    """Seams at a ``grid``-pixel grid: mean |difference| of horizontally and vertically adjacent
    pixels across the grid lines, divided by the same mean at every other position.

    ``frames``: ``... c h w`` (any range; the ratio does not depend on it). A pair of columns
    ``(j - 1, j)`` crosses a grid line where ``j % grid == 0`` (the grid of a patchify that
    starts at pixel 0); rows alike. 1.0 = no seams at that grid; a model that draws its patch
    grid scores well above 1. Real frames resized to training size score about 0.9-1.0;
    compressed video at its native size scores higher (the codec's 8x8 blocks).
    """
    x = frames.float()
    h, w = x.shape[-2:]
    if h <= grid and w <= grid:
        raise ValueError(f"frames of {h}x{w} px cross no line of a {grid}-px grid")
    across_columns = (x[..., :, 1:] - x[..., :, :-1]).abs()  # ... c h (w-1)
    across_rows = (x[..., 1:, :] - x[..., :-1, :]).abs()  # ... c (h-1) w
    on_column_line = torch.arange(1, w) % grid == 0
    on_row_line = torch.arange(1, h) % grid == 0
    seams = torch.cat(
        [across_columns[..., on_column_line].flatten(), across_rows[..., on_row_line, :].flatten()]
    )
    others = torch.cat(
        [across_columns[..., ~on_column_line].flatten(), across_rows[..., ~on_row_line, :].flatten()]
    )
    return float(seams.mean() / others.mean().clamp_min(1e-12))


GRID_PERIODS_PX = (2, 4, 8, 16)


def grid_peaks(
    frames: torch.Tensor, *, periods: tuple[int, ...] = GRID_PERIODS_PX, tile: int = 64
) -> dict[int, float]:
    """Per grid period p (pixels), the largest ratio of spectral power at a frequency of a
    p-pixel grid to the median power of the same direction at nearby radii.

    ``frames``: ``... c h w`` (any range). The power spectrum is averaged over Hann-windowed,
    mean-removed ``tile`` x ``tile`` tiles (half-overlapping; smaller square tiles, a multiple
    of 16 px, for frames under ``tile``), summed over channels. A p-pixel grid puts its power at
    the frequencies k = (kx, ky) that are multiples of tile / p cycles per tile with at least one
    an odd multiple (its own fundamental and mixed terms, not a coarser grid's). Each is
    compared with the median power at k (r + d) / r for d = -3, -2, 2, 3 (r = |k|): the same
    direction, because natural frames put much more power along the axes (horizontal and
    vertical edges) than between them, and a whole ring's median would flag that as a grid;
    d = +-1 is skipped, where the window spreads a grid's own peak, and so are points past the
    edge of the spectrum (at the 2-px grid's frequencies only the inner ones remain). A drawn
    2-px checkerboard of +-8 levels (of 255) scores about 30; natural frames 1-10 (resampling
    leaves faint periodic traces at the highest frequencies). Periods that do not
    divide the tile are left out.
    """
    power, count, size = grid_power(frames, tile=tile)
    return peaks_from_power(power / count, size, periods=periods)


def grid_power(frames: torch.Tensor, *, tile: int = 64) -> tuple[torch.Tensor, int, int]:
    """``grid_peaks``' power spectrum of ``frames`` summed over tiles (channels summed): the
    ``s s`` sum (float64), how many tiles it sums, and the tile size s. Sums of several frame sets
    over their total count are the spectrum of all of them."""
    x = frames.float().reshape(-1, *frames.shape[-3:])  # n c h w
    h, w = x.shape[-2:]
    size = tile if min(h, w) >= tile else min(h, w) // 16 * 16
    if size < 16:
        raise ValueError(f"frames of {h}x{w} px are too small for the grid spectrum (16 px at least)")
    tiles = x.unfold(2, size, size // 2).unfold(3, size, size // 2)  # n c th tw s s
    tiles = tiles - tiles.mean(dim=(-2, -1), keepdim=True)
    window = torch.hann_window(size, periodic=True, dtype=torch.float32)  # a bin leaks into +-1 only
    power = torch.fft.fft2(tiles * (window[:, None] * window[None, :])).abs().pow(2)
    power = power.sum(1)  # n th tw s s: channels summed
    return power.sum(dim=(0, 1, 2)).double(), int(np.prod(power.shape[:3])), size


def peaks_from_power(
    power: torch.Tensor, size: int, *, periods: tuple[int, ...] = GRID_PERIODS_PX
) -> dict[int, float]:
    """``grid_peaks`` of the mean tile power spectrum ``power`` (``s s``, ``grid_power``)."""
    peaks = {}
    for period in periods:
        if size % period:
            continue
        step = size // period
        ratios = []
        for ky in range(0, size, step):
            for kx in range(0, size, step):
                if (ky // step) % 2 == 0 and (kx // step) % 2 == 0:
                    continue  # a coarser grid's frequency (or 0)
                fy, fx = (ky + size // 2) % size - size // 2, (kx + size // 2) % size - size // 2  # signed
                radius = (fy * fy + fx * fx) ** 0.5
                nearby = [
                    (round(fy * (radius + d) / radius), round(fx * (radius + d) / radius))
                    for d in (-3, -2, 2, 3)
                ]
                nearby = [
                    float(power[a % size, b % size]) for a, b in nearby if max(abs(a), abs(b)) <= size // 2
                ]
                ratios.append(float(power[ky, kx]) / max(float(np.median(nearby)), 1e-20))
        peaks[period] = max(ratios)
    return peaks


def grid_peak(frames: torch.Tensor, *, tile: int = 64) -> float:
    """The largest of ``grid_peaks`` over p = 2, 4, 8 and 16 px (1-10 for natural frames)."""
    return max(grid_peaks(frames, tile=tile).values())

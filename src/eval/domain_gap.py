"""How far apart the encoded conditions of real video and of the game are, per channel."""

from __future__ import annotations

import numpy as np

from src.common.io import atomic_path
from src.conditions.spec import CHANNEL_WIDTHS, ConditionSpec


def channel_names(spec: ConditionSpec) -> list[str]:
    """One name per encoded plane: ``albedo.r``, ``depth``, ``normals.x``, ``flow.x``, ..."""
    suffixes = {"albedo": "rgb", "normals": "xyz", "flow": "xy", "depth": ""}
    names = []
    for channel in spec.channels:
        if CHANNEL_WIDTHS[channel] == 1:
            names.append(channel)
        else:
            names += [f"{channel}.{s}" for s in suffixes[channel]]
    return names


def wasserstein_1d(a: np.ndarray, b: np.ndarray, *, num_quantiles: int = 1000) -> float:
    """Earth mover's distance between two 1-D samples (the mean gap between their quantile functions)."""
    levels = (np.arange(num_quantiles) + 0.5) / num_quantiles
    return float(np.mean(np.abs(np.quantile(a, levels) - np.quantile(b, levels))))


def domain_gap(real: np.ndarray, game: np.ndarray, spec: ConditionSpec) -> dict[str, float]:
    """Per-channel 1-D Wasserstein distance between encoded conditions (``... C h w`` each)."""
    names = channel_names(spec)
    real = np.moveaxis(np.asarray(real), -3, 0).reshape(len(names), -1)
    game = np.moveaxis(np.asarray(game), -3, 0).reshape(len(names), -1)
    return {name: round(wasserstein_1d(real[i], game[i]), 5) for i, name in enumerate(names)}


def plot_histograms(
    path, real: np.ndarray, game: np.ndarray, spec: ConditionSpec, distances: dict[str, float]
) -> None:
    """One histogram panel per encoded channel, real and game overlaid, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = channel_names(spec)
    real = np.moveaxis(np.asarray(real), -3, 0).reshape(len(names), -1)
    game = np.moveaxis(np.asarray(game), -3, 0).reshape(len(names), -1)
    cols = 3
    rows = (len(names) + cols - 1) // cols
    figure, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    bins = np.linspace(-1, 1, 51)
    for i, name in enumerate(names):
        ax = axes[i // cols][i % cols]
        ax.hist(real[i], bins=bins, density=True, alpha=0.55, label="real")
        ax.hist(game[i], bins=bins, density=True, alpha=0.55, label="game")
        ax.set_title(f"{name}  W1={distances[name]:.3f}", fontsize=9)
        ax.tick_params(labelsize=7)
    for j in range(len(names), rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=8)
    figure.suptitle("encoded conditions: real video vs game", fontsize=11)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)

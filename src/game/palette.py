"""The city's colours, measured on real footage: ``game/city_palette.yaml`` (numpy + yaml only).

Each region (road, sidewalk, building, vehicle, vegetation, pole, lane_marking, sky) holds k-means
centres of the flat-colour extractor's output on a PandaSet clip, their pixel shares and their
spread; ``src/bench/city_palette.py`` measures and writes them. The game draws an object's colour
as a centre picked by share plus Gaussian noise of that centre's spread.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import yaml

PALETTE_PATH = Path(__file__).resolve().parents[2] / "game" / "city_palette.yaml"


class CityPalette:
    """Measured colour distributions per region (see the module docstring)."""

    def __init__(self, regions: dict):
        self._colours = {k: np.asarray(v["colours"], np.float64) for k, v in regions.items()}
        self._shares = {
            k: np.asarray(v["shares"], np.float64) / np.sum(v["shares"]) for k, v in regions.items()
        }
        self._spread = {k: np.asarray(v["spread"], np.float64) for k, v in regions.items()}

    def colours(self, region: str) -> np.ndarray:
        """k 3 centres in [0, 1], largest share first."""
        return self._colours[region]

    def shares(self, region: str) -> np.ndarray:
        """k shares summing to 1."""
        return self._shares[region]

    def half_mean(self, region: str, half: str) -> np.ndarray:
        """The share-weighted mean colour of the darker or brighter half of the centres (see ``draw``)."""
        colours, shares = self._colours[region], self._shares[region]
        order = np.argsort(colours.sum(1))
        pick = order[: len(order) // 2] if half == "dark" else order[len(order) // 2 :]
        return (colours[pick] * shares[pick, None]).sum(0) / shares[pick].sum()

    def darkest(self, region: str) -> np.ndarray:
        colours = self._colours[region]
        return colours[np.argmin(colours.sum(1))]

    def brightest(self, region: str) -> np.ndarray:
        colours = self._colours[region]
        return colours[np.argmax(colours.sum(1))]

    def draw(self, region: str, rng: np.random.Generator, n: int, *, half: str | None = None) -> np.ndarray:
        """n 3 float32 colours: a centre by share, plus its spread as Gaussian noise. ``half``
        "dark" or "bright" draws only from the darker or brighter half of the centres (a wall
        and the glass in it: together they make up the region's measured distribution)."""
        colours, shares, spread = self._colours[region], self._shares[region].copy(), self._spread[region]
        if half is not None and len(colours) > 1:
            order = np.argsort(colours.sum(1))
            dark = order[: len(order) // 2]
            keep = np.zeros(len(colours), bool)
            keep[dark] = True
            shares[keep if half == "bright" else ~keep] = 0.0
            shares /= shares.sum()
        pick = rng.choice(len(colours), size=n, p=shares)
        noise = rng.standard_normal((n, 3)) * spread[pick]
        return np.clip(colours[pick] + noise, 0.0, 1.0).astype(np.float32)


@functools.cache
def city_palette(path: str | None = None) -> CityPalette:
    """The palette in ``path`` (default: the measured ``game/city_palette.yaml``), read once."""
    data = yaml.safe_load(Path(path or PALETTE_PATH).read_text())
    return CityPalette(data["regions"])

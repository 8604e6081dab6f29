"""Measure the game's city palette on real footage: k-means colours per class of the flat colour.

    uv run python -m src.bench.city_palette --out game/city_palette.yaml

The real side of the condition gap is the flat-colour extractor's output (``FlatColor`` with
``ExtractConfig``'s settings), so that is what the game's albedo should match. PandaSet's LiDAR
map beside the clip (``<video>.depth.npz``) says which pixels are road, sidewalk, building, car,
vegetation, pole/sign or lane marking; sky is every pixel above the highest LiDAR point of its
column (the LiDAR sees no sky) in the upper half of the frame. Per region, k-means in RGB gives
colour centres, their pixel shares and their spread; the game draws each object's colour from
these. Nothing here is hand-picked: the region list and ``k`` are the only choices.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import cv2
import numpy as np
import yaml

from src.conditions.config import ExtractConfig
from src.conditions.flat_color import FlatColor
from src.data.config import DecodeConfig
from src.data.decode import decode_video

DEFAULT_VIDEO = "/work/shared/data/city_videos/city_street_pandaset002_front.mp4"

# game region -> PandaSet class ids (``class_names`` in the .depth.npz)
REGIONS: dict[str, tuple[int, ...]] = {
    "road": (7,),
    "lane_marking": (8, 10),
    "sidewalk": (11,),
    "building": (41,),
    "vehicle": (13, 14, 15),
    "vegetation": (5,),
    "pole": (36, 42),
}
CLUSTERS = {"road": 4, "lane_marking": 2, "sidewalk": 3, "building": 6, "vehicle": 6, "vegetation": 3}
DEFAULT_CLUSTERS = 3
MAX_PIXELS_PER_REGION = 40000


def sky_mask(semantic: np.ndarray, *, margin_px: int = 6) -> np.ndarray:
    """Pixels above the highest LiDAR point of their column, in the upper half (h w bool)."""
    h, w = semantic.shape
    has_point = semantic != 255
    top = np.where(has_point.any(0), has_point.argmax(0), h)  # first row with a point, per column
    rows = np.arange(h)[:, None]
    return (rows < top[None, :] - margin_px) & (rows < h // 2)


def region_pixels(flat: np.ndarray, semantic: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """``{region: n 3 uint8}`` flat-colour pixels of each region over all valid frames."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in (*REGIONS, "sky")}
    for t in np.flatnonzero(valid):
        for name, ids in REGIONS.items():
            out[name].append(flat[t][np.isin(semantic[t], ids)])
        out["sky"].append(flat[t][sky_mask(semantic[t])])
    return {name: np.concatenate(parts) for name, parts in out.items()}


def cluster(pixels: np.ndarray, k: int, *, seed: int = 0) -> dict:
    """k-means (RGB in [0, 1]) of one region: centres, shares and per-cluster spread, by share."""

    rng = np.random.default_rng(seed)
    if len(pixels) > MAX_PIXELS_PER_REGION:
        pixels = pixels[rng.choice(len(pixels), MAX_PIXELS_PER_REGION, replace=False)]
    samples = pixels.astype(np.float32) / 255.0
    k = min(k, len(np.unique(pixels, axis=0)))
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
    _, labels, centres = cv2.kmeans(samples, k, None, criteria, 5, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    shares = np.bincount(labels, minlength=k) / len(labels)
    spread = np.array([samples[labels == i].std(0) if (labels == i).any() else np.zeros(3) for i in range(k)])
    order = np.argsort(-shares)
    return {
        "colours": np.round(centres[order].astype(float), 3).tolist(),
        "shares": np.round(shares[order].astype(float), 3).tolist(),
        "spread": np.round(spread[order].astype(float), 3).tolist(),
        "pixels": int(len(labels)),
    }


def measure(video: str) -> dict:
    """The palette of ``video`` (a PandaSet clip with its ``.depth.npz``), as written to YAML."""

    sidecar = np.load(Path(video).with_suffix(".depth.npz"))
    semantic, valid = sidecar["semantic"], sidecar["valid_frames"]
    h, w = semantic.shape[1:]
    frames = decode_video(video, DecodeConfig(fps=10.0, resolution=f"{w}x{h}", max_frames=len(semantic)))
    extract = ExtractConfig()
    flat_color = FlatColor(
        num_colors=extract.flat_num_colors, lighting_strength=extract.flat_lighting_strength
    )
    flat_color.fit(frames)
    flat = flat_color(frames)  # t h w 3 uint8
    n = min(len(flat), len(semantic))
    pixels = region_pixels(flat[:n], semantic[:n], valid[:n])
    regions = {name: cluster(p, CLUSTERS.get(name, DEFAULT_CLUSTERS)) for name, p in pixels.items()}
    return {
        "measured_on": Path(video).name,
        "measured_by": "uv run python -m src.bench.city_palette (src/bench/city_palette.py)",
        "method": (
            "FlatColor (ExtractConfig defaults) on every frame at the LiDAR map's size; pixels per "
            "region from the PandaSet LiDAR classes (sky: above the column's highest point, upper "
            "half); k-means in RGB per region; colours sorted by share; spread = per-cluster std"
        ),
        "date": datetime.date.today().isoformat(),
        "regions": regions,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="city_palette", description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=DEFAULT_VIDEO, help="a PandaSet clip with its .depth.npz")
    parser.add_argument("--out", default="game/city_palette.yaml", help="where the palette YAML goes")
    args = parser.parse_args(argv)
    palette = measure(args.video)
    header = "# The game's city palette, measured on real footage (see src/bench/city_palette.py).\n"
    Path(args.out).write_text(
        header + yaml.safe_dump(palette, sort_keys=False, width=100, default_flow_style=None)
    )
    for name, region in palette["regions"].items():
        print(
            f"{name:13s} {region['pixels']:7d} px  "
            + "  ".join(f"{c}x{s}" for c, s in zip(region["colours"], region["shares"]))
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

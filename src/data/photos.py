"""Real still photos for the real side of an adversarial realism loss.

Photos come without conditions, so they can only serve where no pairing is needed: as more "real"
examples for a discriminator that judges frames rendered from game G-buffers. ``PhotoCrops``
loads a set of photos once and draws random crops of them at the training frame size, each a
pure function of the generator it is given.

Sources (``real_images``; several are joined with commas, e.g. ``mvtb,data/real_videos/ride.mp4``):

- ``mvtb``: the outdoor colour photos in PyPI's ``mvtb-data`` (MIT, Peter Corke's Machine Vision
  Toolbox data; a dependency): campus buildings, a country road, a park path, facades, a roof,
  churches and a street (``MVTB_OUTDOOR``). The package's ``campus/holdout/`` photos are left out
  so they can serve as unseen real photos in an evaluation;
- a folder: every ``.png``/``.jpg``/``.jpeg`` in it (not recursive);
- a video file: its frames at ``VIDEO_STILL_FPS``, centre-cropped square, from its training part
  only (the first 85 %, ``prepare_data``'s split), so that its held-out end stays unseen.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from src.common.errors import UserError
from src.data.config import DecodeConfig
from src.data.decode import decode_video, split_index

MVTB_OUTDOOR = (
    "road.png",
    "parks.png",
    "roof.png",
    "walls-l.png",
    "walls-r.png",
    "church.png",
    "notre-dame.png",
    "eiffel-1.png",
    "eiffel-2.png",
    "image3.jpg",
    *(f"campus/P10704{n}.png" for n in (91, 93, 94, 95, 96, 97, 98, 99)),
    *(f"campus/P10705{n:02d}.png" for n in (0, 1, 3, 4, 5, 6, 7, 9, 10, 12, 14, 15)),
)
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
VIDEO_STILL_FPS = 10.0


def mvtb_image_folder() -> Path:
    """``mvtbdata/images`` of the installed ``mvtb-data`` package (its ``__init__`` is not run)."""
    spec = importlib.util.find_spec("mvtbdata")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "real photos 'mvtb' need the mvtb-data package, which is not installed",
            "Run `uv sync` (it is a dependency), or pass a folder of photos instead.",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "images"


def photo_files(source: str) -> list[Path]:
    """The photo files of ``source`` (``mvtb`` or a folder), sorted; a clear error when none."""
    if source == "mvtb":
        folder = mvtb_image_folder()
        files = [folder / name for name in MVTB_OUTDOOR if (folder / name).is_file()]
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise UserError(
                f"real photos: {source} is not a folder",
                "Pass 'mvtb' or a folder of .png/.jpg photos.",
            )
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not files:
        raise UserError(f"real photos: no .png/.jpg photos in {folder}", "Pass a folder that holds photos.")
    return files


def read_photo(path: Path) -> np.ndarray:
    """An RGB uint8 photo ``h w 3``; a clear error for a file that is not an image."""

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(
            f"real photos: cannot read {path} as an image", "Remove it or convert it to PNG/JPEG."
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def video_stills(path: Path, *, side: int, val_fraction: float = 0.15) -> list[np.ndarray]:
    """The training part of a video as RGB uint8 stills, ``side`` x ``side`` centre crops."""

    frames = decode_video(path, DecodeConfig(fps=VIDEO_STILL_FPS, resolution=f"{side}x{side}"))
    return list(frames[: max(1, split_index(len(frames), val_fraction))])


def real_images(sources: str, *, side: int) -> list[np.ndarray]:
    """RGB uint8 images of every comma-separated source (see the module docstring)."""
    images: list[np.ndarray] = []
    for source in (part.strip() for part in sources.split(",")):
        if not source:
            continue
        if source != "mvtb" and Path(source).suffix.lower() in VIDEO_SUFFIXES:
            if not Path(source).is_file():
                raise UserError(
                    f"real photos: no video file {source}", "Pass an existing video, a folder or 'mvtb'."
                )
            images += video_stills(Path(source), side=side)
        else:
            images += [read_photo(path) for path in photo_files(source)]
    if not images:
        raise UserError("real photos: no source given", "Pass 'mvtb', a folder of photos or a video file.")
    return images


class PhotoCrops:
    """Random crops of real photos at ``size`` (height, width), ``n 3 h w`` in [-1, 1].

    Each photo is stored once, resized (area averaging) so that its shorter side is
    ``max_zoom`` times the crop's longer side. A crop takes a random photo, a random zoom in
    [1, ``max_zoom``] (1: the crop's side spans the photo's shorter side, as a video frame spans
    its scene; ``max_zoom``: a closer look), a random position and a random horizontal mirror.
    """

    def __init__(self, images: list[np.ndarray], *, size: tuple[int, int], max_zoom: float = 2.0):

        if max_zoom < 1.0:
            raise ValueError(f"max_zoom must be >= 1, got {max_zoom}")
        self.size, self.max_zoom = (int(size[0]), int(size[1])), float(max_zoom)
        side = max(self.size) * self.max_zoom
        self.photos: list[Tensor] = []
        for image in images:
            scale = side / min(image.shape[:2])
            if scale < 1.0:
                new_size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
                image = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
            self.photos.append(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous())

    @classmethod
    def from_source(cls, sources: str, *, size: tuple[int, int], max_zoom: float = 2.0) -> PhotoCrops:
        """Crops of ``real_images(sources)``; a video's stills are decoded at the stored size."""
        side = round(max(size) * max_zoom)
        return cls(real_images(sources, side=side), size=size, max_zoom=max_zoom)

    def __len__(self) -> int:
        return len(self.photos)

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` crops, ``count 3 h w`` float in [-1, 1]."""
        height, width = self.size
        crops = []
        for _ in range(count):
            photo = self.photos[int(torch.randint(len(self.photos), (1,), generator=generator))]
            zoom = 1.0 + (self.max_zoom - 1.0) * float(torch.rand((), generator=generator))
            ph, pw = photo.shape[1:]
            # the crop's window in the photo: its longer side spans shorter-side / zoom pixels
            window = min(ph, pw) / zoom / max(height, width)
            wh, ww = min(ph, round(height * window)), min(pw, round(width * window))
            top = int(torch.randint(ph - wh + 1, (1,), generator=generator))
            left = int(torch.randint(pw - ww + 1, (1,), generator=generator))
            crop = photo[:, top : top + wh, left : left + ww].float()[None]
            crop = F.interpolate(
                crop, size=(height, width), mode="bilinear", antialias=True, align_corners=False
            )
            if bool(torch.rand((), generator=generator) < 0.5):
                crop = crop.flip(-1)
            crops.append(crop[0])
        return (torch.stack(crops) / 127.5 - 1.0).clamp(-1.0, 1.0)

"""The student's realism levers: real photos on the discriminator's real side, the game-clip
structure loss, the grid penalty, and the run that uses them (src/diffusion/student.py,
src/data/photos.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src.common.errors import UserError
from src.data.photos import MVTB_OUTDOOR, PhotoCrops, mvtb_image_folder, photo_files, real_images
from src.diffusion.config import StudentConfig
from src.diffusion.student import StudentObjective, grid_energy, structure_loss
from src.net.student import build_student

ROOT = Path(__file__).resolve().parents[1]
ROAD_CLIP = Path("/work/shared/data/real_videos/highway_ride_udacity_part1.mp4")


def write_photos(folder: Path, count: int = 3) -> list[Path]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        image = rng.integers(0, 256, (60 + 10 * i, 90, 3), dtype=np.uint8)
        path = folder / f"photo{i}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    (folder / "notes.txt").write_text("not a photo")
    return paths


def test_photo_crops_are_real_photo_pixels_at_the_frame_size_and_a_function_of_the_generator(tmp_path):
    paths = write_photos(tmp_path / "photos")
    assert photo_files(str(tmp_path / "photos")) == paths  # the .txt is not a photo
    crops = PhotoCrops.from_source(str(tmp_path / "photos"), size=(16, 24), max_zoom=2.0)
    first = crops.sample(5, torch.Generator().manual_seed(3))
    assert first.shape == (5, 3, 16, 24) and first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, crops.sample(5, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, crops.sample(5, torch.Generator().manual_seed(4)))
    # uniform random pixels: a crop resized with antialiasing keeps the photos' mean colour
    assert abs(float(first.mean())) < 0.1


def test_a_video_source_gives_stills_of_its_training_part_only(tmp_path):
    from src.data.config import DecodeConfig
    from src.data.decode import decode_video, split_index
    from src.data.sources import find_embedded_file

    video = find_embedded_file("bikes.mp4")
    every = decode_video(video, DecodeConfig(fps=10.0, resolution="32x32"))
    stills = real_images(str(video), side=32)
    assert len(stills) == split_index(len(every), 0.15) < len(every)  # the held-out end is left out
    assert all(np.array_equal(a, b) for a, b in zip(stills, every))
    write_photos(tmp_path / "photos", count=2)
    both = real_images(f"{video},{tmp_path / 'photos'}", side=32)
    assert len(both) == len(stills) + 2
    crops = PhotoCrops.from_source(f"{video},{tmp_path / 'photos'}", size=(16, 16))
    assert crops.sample(3, torch.Generator().manual_seed(0)).shape == (3, 3, 16, 16)
    with pytest.raises(UserError, match="no video file"):
        real_images(str(tmp_path / "missing.mp4"), side=32)


def test_photo_sources_fail_with_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .png/.jpg photos"):
        photo_files(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="is not a folder"):
        photo_files(str(tmp_path / "missing"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read"):
        PhotoCrops.from_source(str(tmp_path / "bad"), size=(8, 8))


def test_the_mvtb_outdoor_photos_ship_with_the_dependency():
    folder = mvtb_image_folder()
    files = photo_files("mvtb")
    assert len(files) == len(MVTB_OUTDOOR) >= 30
    assert all(f.parent in (folder, folder / "campus") for f in files)  # never the holdout folder


def skip_critic(name, loss):
    """A ``critic_step`` that leaves the discriminator as it is."""


def tiny_objective(**kwargs):
    def teacher(cond, seeds):
        return (0.5 * cond[:, :, :3] + 0.3 * cond[:, :, 3:6]).tanh()

    generator = torch.Generator().manual_seed(1)
    game_cond = torch.rand(1, 3, 9, 16, 16, generator=generator) * 2 - 1
    game = {
        "cond": game_cond,
        "raster": (game_cond[:, :, :3] * 0.9).clamp(-1, 1),
        "flow_px": torch.zeros(1, 3, 16, 16, 2),
        "valid_mask": torch.ones(1, 3, 16, 16),
    }
    photo_source = kwargs.pop("real_photos", None)
    return StudentObjective(
        teacher=teacher,
        game_clips=lambda index, count: game,
        config=StudentConfig(game_clips_per_batch=1, **kwargs),
        discriminator=torch.nn.Conv2d(3, 1, 4, stride=2),
        photo_source=photo_source,
    )


def test_the_discriminator_real_side_holds_only_real_frames_and_real_photos():
    torch.manual_seed(0)
    model = build_student("tiny", channels=(8, 12, 16), state_channels=8)
    photos = torch.linspace(-1, 1, 4 * 3 * 16 * 16).reshape(4, 3, 16, 16)
    objective = tiny_objective(
        real_photos=lambda count, generator: photos[:count],
        photos_per_batch=4,
        game_adversarial_weight=0.5,
        structure_weight=1.0,
        grid_weight=10.0,
    )
    seen = {}

    def discriminator_loss(real, fake):
        seen["real"], seen["fake"] = real, fake
        return torch.zeros(())

    objective.discriminator_loss = discriminator_loss
    generator = torch.Generator().manual_seed(0)
    cond = torch.rand(2, 3, 9, 16, 16, generator=generator) * 2 - 1
    frames = torch.rand(2, 3, 3, 16, 16, generator=generator) * 2 - 1
    loss, logs = objective(
        model,
        {"frames": frames, "cond": cond},
        generator=torch.Generator().manual_seed(5),
        critic_step=skip_critic,
    )
    assert torch.equal(seen["real"], torch.cat([frames.reshape(6, 3, 16, 16), photos]))
    assert seen["fake"].shape == (9, 3, 16, 16)  # 2 real-condition clips and 1 game clip, 3 frames each
    assert {"structure", "grid", "adversarial", "game_adversarial"} <= set(logs)
    loss.backward()

    # a realism stage: photos alone on the real side, only the game clip's frames judged
    objective = tiny_objective(
        real_photos=lambda count, generator: photos[:count],
        photos_per_batch=4,
        adversarial_weight=0.0,
        game_adversarial_weight=0.5,
        discriminator_real_frames=False,
    )
    objective.discriminator_loss = discriminator_loss
    loss, logs = objective(
        model,
        {"frames": frames, "cond": cond},
        generator=torch.Generator().manual_seed(5),
        critic_step=skip_critic,
    )
    assert torch.equal(seen["real"], photos)
    assert seen["fake"].shape == (3, 3, 16, 16)  # the game clip's 3 frames
    with pytest.raises(ValueError, match="needs real photos"):
        tiny_objective(discriminator_real_frames=False)


def tiny_model_and_batch():
    """A tiny student (seeded) and a batch of two random 3-frame clips of 16x16 conditions."""
    torch.manual_seed(0)
    model = build_student("tiny", channels=(8, 12, 16), state_channels=8)
    generator = torch.Generator().manual_seed(0)
    batch = {
        "cond": torch.rand(2, 3, 9, 16, 16, generator=generator) * 2 - 1,
        "frames": torch.rand(2, 3, 3, 16, 16, generator=generator) * 2 - 1,
    }
    return model, batch


def test_game_weights_default_to_the_shared_ones_and_change_only_the_game_clips():
    model, batch = tiny_model_and_batch()

    def loss_of(**kwargs):
        torch.manual_seed(0)
        objective = tiny_objective(adversarial_weight=0.05, **kwargs)
        return float(
            objective(model, batch, generator=torch.Generator().manual_seed(5), critic_step=skip_critic)[
                0
            ].detach()
        )

    default = loss_of()
    assert loss_of(game_teacher_weight=1.0, game_adversarial_weight=0.05) == pytest.approx(default, abs=1e-6)
    assert loss_of(game_teacher_weight=0.0) < default  # the game clip's teacher L1 is gone


def test_the_temporal_term_holds_the_game_clips_to_the_raster_when_asked(monkeypatch):
    """``temporal_reference``: the game clip's change is compared with the teacher's rollout by
    default and with the game's own raster frames under 'raster'; anything else is refused."""
    import src.diffusion.student as student_module

    model, batch = tiny_model_and_batch()
    seen = []
    real_temporal_loss = student_module.temporal_loss

    def spy(output, reference, flow_px, valid_mask):
        seen.append((output.shape, reference))
        return real_temporal_loss(output, reference, flow_px, valid_mask)

    monkeypatch.setattr(student_module, "temporal_loss", spy)
    for name in ("teacher", "raster"):
        objective = tiny_objective(temporal_reference=name)
        objective(model, batch, generator=torch.Generator().manual_seed(5), critic_step=skip_critic)
    game = objective.game_clips(0, 1)
    teacher_game = objective.teacher(game["cond"], [0])
    assert seen[0][0] == (1, 3, 3, 16, 16)  # the game clip only
    assert torch.equal(seen[0][1], teacher_game) and torch.equal(seen[1][1], game["raster"])
    assert not torch.equal(teacher_game, game["raster"])
    with pytest.raises(UserError, match="temporal_reference"):
        tiny_objective(temporal_reference="video")


def test_the_structure_loss_sees_layout_and_rough_colour_not_texture():
    generator = torch.Generator().manual_seed(0)
    raster = torch.zeros(1, 3, 32, 32)
    raster[..., :16, :] = 0.8  # a bright sky over a dark road
    raster[..., 16:, 8:24] = -0.6
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2 - 1).float()
    textured = raster + 0.3 * checker  # texture finer than 8 px: gone in every 8x8 average
    noisy = raster + 0.1 * torch.randn(raster.shape, generator=generator)
    moved = raster.flip(-2)  # the sky below the road
    assert structure_loss(textured, raster) < 1e-6
    assert structure_loss(noisy, raster) < 0.03
    assert structure_loss(moved, raster) > 0.5


def test_the_grid_energy_sees_a_checkerboard_and_not_a_real_road():
    from src.data.config import DecodeConfig
    from src.data.decode import decode_video
    from src.data.sources import find_embedded_file

    video = ROAD_CLIP if ROAD_CLIP.is_file() else find_embedded_file("bikes.mp4")  # a real clip either way
    frames = decode_video(video, DecodeConfig(resolution="96x96", fps=10, max_frames=4))
    real = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
    yy, xx = torch.meshgrid(torch.arange(96), torch.arange(96), indexing="ij")
    checker = 0.1 * ((yy // 2 + xx // 2) % 2 * 2 - 1).float()  # a 4-px period checkerboard, 0.1 high
    shifted = torch.roll(checker, shifts=(1, 3), dims=(0, 1))
    assert grid_energy(real + checker) > 10 * grid_energy(real)
    assert grid_energy(real + shifted) > 10 * grid_energy(real)  # any phase of the grid
    assert grid_energy(real) < 2e-4

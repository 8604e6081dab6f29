"""The one model-card writer (src/train/package.py's ``model_card``) and the run card over it."""

from __future__ import annotations

from types import SimpleNamespace

from src.train.package import model_card, reproduce_block, run_card


def test_model_card_layout():
    card = model_card(
        "Velodream renderer: x", ["one", "two"], [], ["## Reproduce"], reproduce_block("uv run a")
    )
    assert card == "# Velodream renderer: x\n\none\ntwo\n\n## Reproduce\n\n```\nuv run a\n```\n"


def test_run_card_sections_in_order():
    config = SimpleNamespace(
        run_name="r1",
        objective="flow_matching",
        teacher=None,
        model=SimpleNamespace(model_class="StudentUNet", preset="tiny", overrides={}),
        conditions=SimpleNamespace(channels=["albedo", "depth"]),
        data=SimpleNamespace(batch_size=2, clip_frames=8, crop=None, dataset="data/prepared/other"),
    )
    data = SimpleNamespace(manifest={"fps": 12, "videos": [{"source": "/v/road.mp4"}]}, frame_size=(64, 96))
    card = run_card(
        config=config,
        data=data,
        step=5,
        metrics={"real_psnr": 21.25},
        num_params=2_000_000,
        command="uv run train",
        appendix=[["## Training curves"], ["![curves](curves.png)"]],
    )
    headings = [line for line in card.splitlines() if line.startswith("#")]
    assert headings == [
        "# Velodream renderer: r1",
        "## Model",
        "## Data",
        "## Validation (EMA weights)",
        "## Reproduce",
        "# prepare data/prepared/other with src.scripts.prepare_data (see data/README.md)",
        "## Training curves",
    ]
    assert "A recurrent U-Net student" in card and "- real_psnr: 21.25" in card
    assert "- `StudentUNet` preset `tiny`, 2.00M parameters" in card and "`road.mp4`" in card
    assert "\n\n\n" not in card and card.endswith("![curves](curves.png)\n")

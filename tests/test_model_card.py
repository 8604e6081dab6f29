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
        data=SimpleNamespace(
            batch_size=2,
            clip_frames=8,
            crop=None,
            dataset="data/prepared/other",
            source_weights={"city_street_*": 3, "*": 1},
        ),
    )
    videos = [
        {"id": "road-1", "source": "/v/road.mp4"},
        {"id": "city-2", "source": "/d/city_street_pandaset002_front.mp4", "depth_source": "lidar_sidecar"},
    ]
    data = SimpleNamespace(manifest={"fps": 12, "videos": videos}, frame_hw=(64, 96))
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
    # each video's sampling weight, where its depth came from, and the credit its licence asks for
    road, city = (line for line in card.splitlines() if line.startswith("  - `"))
    assert "sampling weight 1;" not in road and "sampling weight 1" in road and "your own video" in road
    assert "sampling weight 3" in city and "LiDAR sidecar" in city
    assert '"PandaSet (Scale AI, Hesai), CC BY 4.0"' in city
    assert "\n\n\n" not in card and card.endswith("![curves](curves.png)\n")


def test_run_card_lists_the_stages_it_started_from(tmp_path):
    """A fine-tune's card lists the run it started from (``init_from``), followed back through the
    packages' cards, oldest first, each dataset prepared once."""
    import json

    from src.train.package import earlier_stages

    def package(name, dataset, command, init_from=None):
        folder = tmp_path / name / "package"
        folder.mkdir(parents=True)
        card = {
            "run_name": name,
            "dataset": dataset,
            "command": command,
            "train_config": {"init_from": init_from},
        }
        (folder / "conditions.json").write_text(json.dumps({"card": card}))
        (folder / "config.json").write_text("{}")
        return tmp_path / name

    low = package("low", "data/prepared/cpu_112", "uv run train --conf low.yaml")
    high = package("high", "data/prepared/cpu_224", "uv run train --conf high.yaml", init_from=str(low))
    stages = earlier_stages(high)
    assert [stage["run_name"] for stage in stages] == ["low", "high"]
    assert earlier_stages(tmp_path / "missing") == [] and earlier_stages(None) == []
    # a folder a stage started from and later replaced by that stage's own package: listed once
    loop = package(
        "loop", "data/prepared/bundle", "uv run train --conf ft.yaml", init_from=str(tmp_path / "loop")
    )
    assert [stage["run_name"] for stage in earlier_stages(loop)] == ["loop"]
    assert earlier_stages(loop, current=("loop", None)) == []  # ... or by this run's own package

    config = SimpleNamespace(
        run_name="distill",
        objective="distill",
        teacher=str(high),
        model=SimpleNamespace(model_class="VelodreamDiT", preset="tiny", overrides={}),
        conditions=SimpleNamespace(channels=["albedo"]),
        data=SimpleNamespace(
            batch_size=2, clip_frames=4, crop=None, dataset="data/prepared/cpu_224", source_weights={}
        ),
    )
    data = SimpleNamespace(manifest={"fps": 10, "videos": []}, frame_hw=(224, 224))
    card = run_card(
        config=config,
        data=data,
        step=1,
        metrics={},
        num_params=1,
        command="uv run train --conf d.yaml",
        stages=stages,
    )
    block = card.split("```")[1].strip().splitlines()
    assert block == [
        "# stage 1: low",
        "# prepare data/prepared/cpu_112 with src.scripts.prepare_data (see data/README.md)",
        "uv run train --conf low.yaml",
        "# stage 2: high",
        "# prepare data/prepared/cpu_224 with src.scripts.prepare_data (see data/README.md)",
        "uv run train --conf high.yaml",
        "# stage 3: distill",
        "uv run train --conf d.yaml",
    ]
    assert "all 3 stages are listed" in card

"""The start-up benchmark runs the real commands and writes its table's numbers as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.scripts.bench_startup import main


def test_bench_startup_times_real_commands_and_writes_json(tmp_path, capsys):
    out = tmp_path / "startup.json"
    main(
        ["--scripts", "download_checkpoint", "--rounds", "1", "--no_display", "false", "--json_out", str(out)]
    )
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["command"] == "download_checkpoint --help" and len(row["runs_s"]) == 1
    assert 0 < row["min_s"] <= row["median_s"] < 120
    assert "| download_checkpoint --help |" in capsys.readouterr().out


def test_bench_startup_refuses_an_unknown_script(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--scripts", "no_such_script", "--json_out", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2 and "unknown script(s): no_such_script" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_every_script_is_a_project_command():
    """`uv run NAME` runs src.scripts.NAME:main (pyproject's [project.scripts]), for every script."""
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    entries = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    modules = sorted(p.stem for p in (root / "src/scripts").glob("*.py") if p.stem != "__init__")
    assert entries == {name: f"src.scripts.{name}:main" for name in modules}
    command = Path(sys.executable).parent / "download_checkpoint"  # installed by `uv sync`
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: download_checkpoint")


HEAVY = ("torch", "cv2", "av", "diffusers", "accelerate", "transformers")


SCRIPTS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "src/scripts").glob("*.py"))


@pytest.mark.parametrize("script", [name for name in SCRIPTS if name != "__init__"])
def test_help_of_every_command_imports_no_heavy_library(script):
    """Config dataclasses live in modules free of torch, cv2 and av (src/*/config.py), and a script
    imports its library after parsing: --help answers in well under a second (torch alone takes 2-5 s)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        f"from src.scripts.{script} import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        f"print('loaded:', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"usage: {script}" in result.stdout
    assert result.stdout.splitlines()[-1] == "loaded: []"


def test_the_moved_config_classes_keep_their_old_import_paths():
    from src.conditions import augment, config, extract
    from src.data import config as data_config
    from src.data import decode, prepare

    assert augment.AugmentConfig is config.AugmentConfig
    assert extract.ExtractConfig is config.ExtractConfig
    assert decode.DecodeConfig is data_config.DecodeConfig
    assert prepare.PrepareConfig is data_config.PrepareConfig
    assert prepare.PrepareConfig().decode_config() == decode.DecodeConfig()

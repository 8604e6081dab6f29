"""The start-up benchmark runs the real commands and writes its table's numbers as JSON."""

from __future__ import annotations

import json

import pytest

from src.scripts.bench_startup import main


def test_bench_startup_times_real_commands_and_writes_json(tmp_path, capsys):
    out = tmp_path / "startup.json"
    main(["--scripts", "download_checkpoint", "--rounds", "1", "--no_display", "false", "--json_out", str(out)])
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

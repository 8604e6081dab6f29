"""Every numeric field of every script's config declares its range, and parsing refuses a value
outside it with one line; bare preset names resolve against conf/."""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import json
import math
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

from src.common.config import _as_dataclass, parse_config
from src.common.errors import UserError
from src.common.ranges import check_ranges, field_ranges

ROOT = Path(__file__).resolve().parents[1]

SCRIPT_CONFIGS = {
    "play_game": "RideConfig",
    "benchmark": "BenchmarkConfig",
    "baseline_package": "BaselinePackageConfig",
    "prepare_data": "PrepareConfig",
    "eval_extractors": "EvalExtractorsConfig",
    "download_checkpoint": "DownloadConfig",
    "train_net": "TrainConfig",
    "export_package": "ExportConfig",
    "bundle_package": "BundleConfig",
    "evaluate": "EvaluateConfig",
    "bench_game": "BenchGameConfig",
    "visualize_conditions": "VisualizeConditionsConfig",
    "bench_generalisation": "GeneralisationConfig",
    "publish_checkpoint": "PublishConfig",
    "bench_startup": "BenchStartupConfig",
    "make_flythroughs": "FlythroughConfig",
}


def script_config(script: str) -> type:
    return getattr(importlib.import_module(f"src.scripts.{script}"), SCRIPT_CONFIGS[script])


def _numeric_kind(hint: typing.Any) -> str | None:
    """'scalar', 'sequence' or None: is the field a number, a tuple/list of numbers, or neither."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = {_numeric_kind(a) for a in args} - {None}
        return kinds.pop() if kinds else None
    if hint in (int, float):
        return "scalar"
    if typing.get_origin(hint) in (tuple, list) and args and all(a in (int, float, Ellipsis) for a in args):
        return "sequence"
    return None


def numeric_fields(config_cls: type, prefix: str = "") -> list[tuple[str, type, str, str]]:
    """(dotted key, owning class, field name, kind) of every numeric field, nested ones too."""
    found = []
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        hint = hints[field.name]
        nested = _as_dataclass(hint)
        if nested is not None:
            found += numeric_fields(nested, f"{prefix}{field.name}.")
        elif (kind := _numeric_kind(hint)) is not None:
            found.append((f"{prefix}{field.name}", config_cls, field.name, kind))
    return found


CASES = [(script, *field) for script in SCRIPT_CONFIGS for field in numeric_fields(script_config(script))]


def test_the_walk_finds_the_numeric_fields_of_every_config():
    keys = {(script, key) for script, key, *_ in CASES}
    assert ("train_net", "optim.learning_rate") in keys and ("train_net", "data.frame_skip") in keys
    assert ("prepare_data", "shard_frames") in keys and ("play_game", "world.car_share") in keys
    assert len(CASES) > 150


@functools.cache
def default_config(script: str):
    return parse_config(script_config(script), [])


def bad_value(owner: type, name: str, kind: str):
    """A value of the field just outside its declared range (NaN where it has no finite end)."""
    interval = field_ranges(owner)[name]
    hint = typing.get_type_hints(owner)[name]
    is_int = "int" in str(hint) and "float" not in str(hint)
    if math.isfinite(interval.low):
        value = interval.low - 1 if interval.low_closed or is_int else interval.low
    elif math.isfinite(interval.high):
        value = interval.high + 1 if interval.high_closed or is_int else interval.high
    else:
        value = math.nan
    value = int(value) if is_int and math.isfinite(value) else value
    if kind == "sequence":
        default = getattr(owner(), name)
        return [value] * (len(default) if isinstance(default, tuple) else 1)
    return value


@pytest.mark.parametrize(
    ("script", "key", "owner", "name", "kind"), CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_numeric_field_declares_a_range_and_refuses_a_value_outside_it(script, key, owner, name, kind):
    ranges = field_ranges(owner)
    assert name in ranges, f"{owner.__name__}.{name} declares no range in {owner.__name__}.RANGES"
    default = getattr(owner(), name)
    for item in default if isinstance(default, (list, tuple)) else [default]:
        assert item is None or item in ranges[name], f"the default {default} is outside {ranges[name]}"
    config = copy.deepcopy(default_config(script))
    check_ranges(config)  # the defaults pass
    *parents, leaf = key.split(".")
    holder = functools.reduce(getattr, parents, config)
    bad = bad_value(owner, name, kind)
    setattr(holder, leaf, tuple(bad) if isinstance(default, tuple) else bad)
    with pytest.raises(UserError) as error:
        check_ranges(config)  # what parse_config runs on every parsed config
    line = error.value.one_line()
    assert "\n" not in line and f"invalid --{key} " in line and "out of range" in line, line


@pytest.mark.parametrize("script", sorted({case[0] for case in CASES}))
def test_every_script_refuses_an_out_of_range_flag_at_parse_time(script):
    fields = [case for case in CASES if case[0] == script]
    for _, key, owner, name, kind in fields[:3]:
        bad = bad_value(owner, name, kind)
        text = json.dumps(bad) if isinstance(bad, list) else str(bad)
        with pytest.raises(UserError) as error:
            parse_config(script_config(script), [f"--{key}", text])
        line = error.value.one_line()
        assert "\n" not in line and key in line, line


def test_ranges_name_only_real_fields():
    for script in SCRIPT_CONFIGS:
        stack = [script_config(script)]
        while stack:
            cls = stack.pop()
            names = {field.name for field in dataclasses.fields(cls)}
            assert set(field_ranges(cls)) <= names, cls.__name__
            hints = typing.get_type_hints(cls)
            stack += [nested for f in dataclasses.fields(cls) if (nested := _as_dataclass(hints[f.name]))]


@pytest.mark.parametrize(
    ("script", "args", "key"),
    [
        ("train_net", ["--optim.learning_rate", "-0.001"], "--optim.learning_rate"),
        ("train_net", ["--max_steps", "0"], "--max_steps"),
        ("train_net", ["--checkpoint_every_steps", "0"], "--checkpoint_every_steps"),
        ("prepare_data", ["--defaults", "--shard_frames", "0"], "--shard_frames"),
        ("prepare_data", ["--defaults", "--max_frames", "0"], "--max_frames"),
    ],
)
def test_scripts_exit_2_with_one_line_naming_the_flag(script, args, key, tmp_path, capsys):
    main = importlib.import_module(f"src.scripts.{script}").main
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(out)] if script == "prepare_data" else [*args, "--runs_dir", str(out)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], err
    assert not out.exists()


@pytest.mark.slow
def test_a_script_process_prints_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.scripts.train_net",
            "--optim.ema_decay",
            "2.0",
            "--runs_dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "invalid --optim.ema_decay 2.0: out of range" in result.stderr


def test_bare_preset_names_resolve_against_conf(tmp_path, monkeypatch):
    from src.train.config import TrainConfig

    monkeypatch.chdir(tmp_path)  # no conf/ here: the names are the project's presets
    config = parse_config(TrainConfig, ["--conf", "base.yaml", "--conf", "cpu_tiny"])
    expected = parse_config(
        TrainConfig, ["--conf", str(ROOT / "conf/base.yaml"), "--conf", str(ROOT / "conf/cpu_tiny.yaml")]
    )
    assert config == expected and config.run_name == "cpu_tiny"


def test_a_file_in_the_working_directory_wins_over_the_preset(tmp_path, monkeypatch):
    from src.train.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu_tiny.yaml").write_text("run_name: mine\n")
    assert parse_config(TrainConfig, ["--conf", "cpu_tiny.yaml"]).run_name == "mine"


def test_a_missing_preset_lists_the_presets(tmp_path, monkeypatch):
    from src.train.config import TrainConfig

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        parse_config(TrainConfig, ["--conf", "pretrain_low.yaml"])
    line = error.value.one_line()
    assert "pretrain_low.yaml" in line and "pretrain_lowres" in line and "cpu_tiny" in line


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "conf").glob("*.yaml")))
def test_every_preset_is_in_range(preset):
    from src.train.config import TrainConfig

    parse_config(TrainConfig, ["--conf", "base.yaml", "--conf", preset])

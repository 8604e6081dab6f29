"""The shared config mechanism: layering, overrides, unknown keys, types, --print_config."""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from src.common.config import load_config, parse_config, parse_resolution, to_dict
from src.common.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class OptimizerConfig:
    learning_rate: float = 1e-3
    num_warmup_steps: int = 10


@dataclasses.dataclass
class ExampleConfig:
    name: str = "default"
    max_steps: int = 100
    channels: tuple[str, ...] = ("albedo", "depth")
    init_from: str | None = None
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_defaults_without_arguments():
    config = parse_config(ExampleConfig, [])
    assert config == ExampleConfig()


def test_files_layer_in_order_and_overrides_come_last(tmp_path):
    first = write(tmp_path, "a.yaml", "name: first\nmax_steps: 5\noptimizer:\n  learning_rate: 0.5\n")
    second = write(tmp_path, "b.yaml", "max_steps: 7\noptimizer:\n  num_warmup_steps: 3\n")
    config = parse_config(
        ExampleConfig, ["--conf", first, "--conf", second, "--conf.optimizer.learning_rate", "0.25"]
    )
    assert config.name == "first"  # only in the first file
    assert config.max_steps == 7  # the second file wins
    assert config.optimizer.num_warmup_steps == 3
    assert config.optimizer.learning_rate == 0.25  # the command line wins over both files
    reversed_order = parse_config(ExampleConfig, ["--conf", second, "--conf", first])
    assert reversed_order.max_steps == 5


def test_short_flags_are_the_same_overrides(tmp_path):
    config = parse_config(
        ExampleConfig, ["--max_steps", "3", "--optimizer.learning_rate=0.1", "--init_from", "runs/x"]
    )
    assert (config.max_steps, config.optimizer.learning_rate, config.init_from) == (3, 0.1, "runs/x")


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    bad = write(tmp_path, "bad.yaml", "optimizer:\n  learning_rat: 0.1\n")
    with pytest.raises(UserError) as error:
        parse_config(ExampleConfig, ["--conf", bad])
    assert "optimizer.learning_rat" in str(error.value) and "bad.yaml" in str(error.value)


def test_wrapper_key_is_rejected(tmp_path):
    wrapped = write(tmp_path, "wrapped.yaml", "conf:\n  max_steps: 3\n")
    with pytest.raises(UserError, match="unknown config key 'conf'.*wrapped.yaml"):
        parse_config(ExampleConfig, ["--conf", wrapped])


def test_unknown_key_on_command_line():
    with pytest.raises(UserError, match="unknown option '--conf.optimizer.nope'.*command line"):
        parse_config(ExampleConfig, ["--conf.optimizer.nope", "1"])


def test_wrong_type_names_expected_type(tmp_path):
    with pytest.raises(UserError, match="int") as error:
        parse_config(ExampleConfig, ["--max_steps", "lots"])
    assert "command line" in str(error.value)
    bad = write(tmp_path, "typed.yaml", "optimizer:\n  learning_rate: fast\n")
    with pytest.raises(UserError, match="float") as error:
        parse_config(ExampleConfig, ["--conf", bad])
    assert "typed.yaml" in str(error.value)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        parse_config(ExampleConfig, ["--conf", str(tmp_path / "nope.yaml")])


def test_print_config_round_trips(tmp_path, capsys):
    first = write(tmp_path, "a.yaml", "name: printed\n")
    with pytest.raises(SystemExit) as exit_info:
        parse_config(ExampleConfig, ["--conf", first, "--max_steps", "9", "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == to_dict(ExampleConfig(name="printed", max_steps=9))
    resolved = write(tmp_path, "resolved.yaml", yaml.safe_dump(printed))
    assert load_config(ExampleConfig, resolved) == ExampleConfig(name="printed", max_steps=9)


def test_base_layers_come_before_the_users_files_and_overrides(tmp_path):
    base_file = write(tmp_path, "base.yaml", "name: from_base_file\nmax_steps: 2\n")
    user_file = write(tmp_path, "user.yaml", "max_steps: 4\n")
    layers = [{"name": "from_dict", "optimizer": {"learning_rate": 0.5, "num_warmup_steps": 1}}, base_file]
    config = parse_config(
        ExampleConfig, ["--conf", user_file, "--optimizer.num_warmup_steps", "3"], base_layers=layers
    )
    assert config.name == "from_base_file" and config.max_steps == 4  # later layers and the user win
    assert config.optimizer == OptimizerConfig(learning_rate=0.5, num_warmup_steps=3)
    # a layer can depend on what the user asked for (play_game's --level)
    derived = parse_config(
        ExampleConfig, ["--name", "x"], base_layers=[lambda c: {"init_from": f"runs/{c.name}"}]
    )
    assert derived.init_from == "runs/x" and derived.name == "x"
    with pytest.raises(UserError, match="unknown config key 'nmae' in a base layer"):
        parse_config(ExampleConfig, [], base_layers=[{"nmae": "typo"}])


@dataclasses.dataclass
class ListsConfig:
    paths: list[str] = dataclasses.field(default_factory=list)
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    steps: int = 1


def test_list_fields_take_the_words_that_follow_them():
    config = parse_config(ListsConfig, ["--paths", "a.mp4", "no", "--seeds", "3", "4", "--steps", "2"])
    assert config == ListsConfig(paths=["a.mp4", "no"], seeds=[3, 4], steps=2)
    assert parse_config(ListsConfig, ["--conf.paths", "one"]).paths == ["one"]
    assert parse_config(ListsConfig, ["--seeds", "[5, 6]"]).seeds == [5, 6]


def test_parse_resolution():
    assert parse_resolution("320x240") == (320, 240)
    for bad in ("320", "axb", "0x10", "320x-1"):
        with pytest.raises(UserError, match="WIDTHxHEIGHT|between"):
            parse_resolution(bad)


def test_script_prints_one_error_line_and_no_traceback(tmp_path):
    script = write(
        tmp_path,
        "script.py",
        """
        from src.common.errors import UserError, script_main

        @script_main
        def main():
            raise UserError("the input was wrong", "Do this instead.")

        main()
        """,
    )
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, cwd=".", env=_env())
    assert result.returncode == 2
    assert result.stderr.strip() == "error: the input was wrong. Do this instead."


def test_unexpected_errors_keep_their_traceback(tmp_path):
    script = write(
        tmp_path,
        "script.py",
        """
        from src.common.errors import script_main

        @script_main
        def main():
            raise RuntimeError("a bug")

        main()
        """,
    )
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, env=_env())
    assert result.returncode == 1 and "Traceback" in result.stderr and "RuntimeError: a bug" in result.stderr


def _env():
    import os
    from pathlib import Path

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


SCRIPTS = sorted(p.stem for p in (ROOT / "src" / "scripts").glob("*.py") if p.stem != "__init__")


HELP_OPTION = re.compile(r"  (--conf\.[\w.]+)(?: \S+)?(?:, --conf\.[\w.]+\+(?: \S+)?)?(?:\s{2,}(.*))?$")


def _help_descriptions(help_text: str) -> dict[str, str]:
    """``--conf.KEY`` -> the description --help prints for it (the text before its type)."""
    blocks: dict[str, str] = {}
    option = None
    for line in help_text.splitlines():
        match = HELP_OPTION.fullmatch(line)
        if match:
            option = match.group(1)
            blocks[option] = match.group(2) or ""
        elif option and line.startswith(" " * 8):
            blocks[option] += " " + line.strip()
        else:
            option = None
    return {key: re.sub(r"\(type: .*", "", text).strip() for key, text in blocks.items()}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_describes_every_field(script, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(ROOT)
    main = importlib.import_module(f"src.scripts.{script}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    descriptions = _help_descriptions(capsys.readouterr().out)
    leaves = {key: text for key, text in descriptions.items() if text != "Path to a configuration file."}
    assert len(leaves) >= 2
    undescribed = sorted(key for key, text in leaves.items() if not text)
    assert not undescribed, f"{script} --help has no description for {undescribed}"

"""Every command the README shows parses as written (the runs themselves are in the other tests).

Each ``uv run NAME ARGS`` or ``uv run python -m src.scripts.NAME ARGS`` (also after ``accelerate
launch``) is called in-process with ``--print_config`` appended: its flags must exist, its --conf
files load and its values type-check. ``uv run pytest --full``, the README's full test command,
is what CI runs.

On a fresh clone every path a command reads must exist, or be made by an earlier example of the
README (an ``--out``, a recording, a training run's folder, a ``curl -o`` or ``mkdir -p``).
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = re.compile(r"-m (src\.scripts\.\w+)((?: [^`\n#]*)?)")
SHORT = re.compile(r"uv run (\w+)((?: [^`\n#]*)?)")  # a project command: uv run play_game ...
SCRIPT_NAMES = {p.stem for p in (ROOT / "src/scripts").glob("*.py")} - {"__init__"}


def readme_commands() -> list[tuple[str, list[str]]]:
    return [(module, args) for _, module, args in readme_commands_by_line()]


def readme_commands_by_line() -> list[tuple[int, str, list[str]]]:
    """(line index, module, arguments) of every script command of the README, in order."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for index, line in enumerate(text.splitlines()):
        if "uv run" not in line:
            continue
        found = [(m.start(), m.group(1), m.group(2)) for m in SCRIPT.finditer(line)]
        found += [
            (m.start(), f"src.scripts.{m.group(1)}", m.group(2))
            for m in SHORT.finditer(line)
            if m.group(1) in SCRIPT_NAMES
        ]
        for _, module, args in sorted(found):
            commands.append((index, module, shlex.split(args.strip())))
    return commands


def test_readme_lists_the_main_commands():
    scripts = {module for module, _ in readme_commands()}
    assert {"src.scripts.play_game", "src.scripts.train_net", "src.scripts.prepare_data"} <= scripts
    assert len(readme_commands()) >= 25
    text = (ROOT / "README.md").read_text()
    assert "uv run python -m src.scripts.play_game" in text and "\nuv run pytest --full\n" in text
    ci = (ROOT / ".ci/run").read_text()
    assert "\nuv run pytest --full\n" in ci  # CI runs exactly the README's full test command


@pytest.mark.parametrize(
    ("module", "args"), readme_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_readme_command_parses(module, args, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()


INPUT_FLAGS = {
    "--checkpoint",
    "--data",
    "--videos",
    "--init_from",
    "--conf.init_from",
    "--teacher",
    "--renderers",
}
OUTPUT_FLAGS = {"--out", "--record", "--record_side_by_side", "--record_gbuffers", "--json_out"}
POSITIONAL = {
    "src.scripts.export_package",
    "src.scripts.publish_checkpoint",
    "src.scripts.download_checkpoint",
}


def _flag_values(args: list[str]) -> list[tuple[str | None, str]]:
    """(flag, value) pairs of a command's words; a list flag gives one pair per word."""
    pairs, flag = [], None
    for word in args:
        if word.startswith("--"):
            flag, _, value = word.partition("=")
            if value:
                pairs.append((flag, value))
            continue
        pairs.append((flag, word))
    return pairs


def _shell_outputs(text: str) -> set[str]:
    """Paths that the README's shell lines make: ``mkdir -p DIR`` and ``curl ... -o FILE``."""
    made = set(re.findall(r"mkdir -p (\S+)", text))
    made |= set(re.findall(r"curl [^\n]*-o (\S+)", text))
    return made


def _is_input_path(flag: str | None, value: str, module: str) -> bool:
    if "://" in value or value.isupper() or value.startswith("["):
        return False  # a URL, a placeholder (SOURCE, PACKAGE) or a list literal
    return flag in INPUT_FLAGS or (flag is None and module in POSITIONAL)


def test_readme_paths_exist_or_are_made_by_an_earlier_example(monkeypatch):
    from src.common.config import parse_config
    from src.train.config import TrainConfig

    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    made: set[str] = set()
    shell = _shell_outputs(text)
    lines = text.splitlines()
    missing = []
    for position, module, args in readme_commands_by_line():
        # the shell lines above this command have run
        made |= {path for path in shell if any(f" {path}" in line for line in lines[:position])}
        for flag, value in _flag_values(args):
            if not _is_input_path(flag, value, module):
                continue
            path = value.split("=", 1)[1] if flag == "--renderers" else value
            fresh_clone = (ROOT / path).exists() and not path.startswith(("runs/", "data/"))
            if not (fresh_clone or any(path == m or path.startswith(m.rstrip("/") + "/") for m in made)):
                missing.append(f"{module} {' '.join(args)}: {path}")
        made |= {value for flag, value in _flag_values(args) if flag in OUTPUT_FLAGS}
        if module == "src.scripts.train_net":
            config = parse_config(TrainConfig, args)
            made.add(f"{config.runs_dir}/{config.run_name}")
    assert not missing, "README examples read paths that a fresh clone lacks:\n" + "\n".join(missing)


def test_the_path_check_catches_a_path_a_fresh_clone_lacks():
    assert _is_input_path("--data", "../shared/data/real_videos", "src.scripts.evaluate")
    assert not (ROOT / "../shared/data/real_videos").resolve().is_relative_to(ROOT)
    assert not _is_input_path("--checkpoint", "hf://owner/repo", "src.scripts.play_game")
    assert _shell_outputs(
        "mkdir -p data/real_videos\ncurl -L -o data/real_videos/a.mp4 https://x/a.mp4\n"
    ) == {"data/real_videos", "data/real_videos/a.mp4"}

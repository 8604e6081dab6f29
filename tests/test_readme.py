"""Every command the README shows parses as written (the runs themselves are in the other tests).

Each ``uv run python -m src.scripts.NAME ARGS`` (also after ``accelerate launch``) is called
in-process with ``--print_config`` appended: its flags must exist, its --conf files load and
its values type-check. ``uv run pytest`` is what CI runs.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = re.compile(r"-m (src\.scripts\.\w+)((?: [^`\n#]*)?)")


def readme_commands() -> list[tuple[str, list[str]]]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for line in text.splitlines():
        if "uv run" not in line:
            continue
        for match in SCRIPT.finditer(line):
            args = shlex.split(match.group(2).strip())
            commands.append((match.group(1), args))
    return commands


def test_readme_lists_the_main_commands():
    scripts = {module for module, _ in readme_commands()}
    assert {"src.scripts.play_game", "src.scripts.train_net", "src.scripts.prepare_data"} <= scripts
    text = (ROOT / "README.md").read_text()
    assert "uv run python -m src.scripts.play_game" in text and "uv run pytest" in text
    ci = (ROOT / ".ci/run").read_text()
    assert "\nuv run pytest\n" in ci  # CI runs exactly the README's test command


@pytest.mark.parametrize(("module", "args"), readme_commands(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_readme_command_parses(module, args, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip()

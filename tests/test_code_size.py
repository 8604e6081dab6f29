"""Size limits on the source: no module in src/ over 400 lines, no function over 60 lines unless
a comment at its top (``# Long: <why>`` within the first lines of its body) says why it must be."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
REASON = "# Long:"


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def _says_why(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A ``# Long:`` comment between the def line and the first few lines of the body."""
    first_body_line = node.body[0].lineno
    if isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant):
        first_body_line = node.body[0].end_lineno + 1  # after the docstring
    window = lines[node.lineno - 1 : first_body_line + 3]
    return any(line.strip().startswith(REASON) and len(line.strip()) > len(REASON) + 5 for line in window)


def test_no_module_is_over_the_line_limit():
    over = {}
    for path in _modules():
        count = len(path.read_text().splitlines())
        if count > MAX_FILE_LINES:
            over[str(path.relative_to(SRC.parent))] = count
    assert not over, f"modules over {MAX_FILE_LINES} lines (split them by what they do): {over}"


def test_no_function_is_over_the_line_limit_without_saying_why():
    over = {}
    for path in _modules():
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and not _says_why(lines, node):
                    over[f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name}"] = length
    assert not over, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps, or put a "
        f"'{REASON} <why>' comment at the top): {over}"
    )


def test_the_checker_sees_a_long_function_and_its_reason(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    plain = ast.parse(f"def f():\n{body}\n").body[0]
    lines = f"def f():\n{body}\n".splitlines()
    assert not _says_why(lines, plain)
    reasoned_text = (
        f'def f():\n    """Doc."""\n    # Long: one table of seventy rows reads best whole\n{body}\n'
    )
    reasoned = ast.parse(reasoned_text).body[0]
    assert _says_why(reasoned_text.splitlines(), reasoned)

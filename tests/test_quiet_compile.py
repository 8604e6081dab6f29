"""``--compile`` on a machine with a CUDA toolkit but no GPU prints no "No CUDA runtime is found"
line: inductor loads torch's C++ extension helper, which logs it (src/net/compiling.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WARNING = "No CUDA runtime is found"


def _stderr(code: str, cuda_home: Path) -> str:
    env = {"CUDA_HOME": str(cuda_home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the line is only given without CUDA")
def test_compiling_on_a_cpu_with_a_cuda_toolkit_prints_no_cuda_line(tmp_path):
    # what inductor does when it compiles: torch's helper finds the toolkit and warns
    assert WARNING in _stderr("import torch.utils.cpp_extension", tmp_path)
    quiet = (
        "import torch\n"
        "from src.net.compiling import compile_quietly\n"
        "compiled = compile_quietly(torch.nn.Linear(2, 2))\n"
        "import torch.utils.cpp_extension\n"
    )
    assert WARNING not in _stderr(quiet, tmp_path)


def test_every_compile_of_a_model_goes_through_compile_quietly():
    callers = [p for p in (ROOT / "src").rglob("*.py") if "torch.compile(" in p.read_text()]
    assert [p.relative_to(ROOT).as_posix() for p in callers if p.name != "compiling.py"] in (
        [],
        ["src/bench/equal_work.py"],  # the benchmark compiles a reference model of its own
    )

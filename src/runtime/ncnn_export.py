"""Exporting a renderer model's step graph to ncnn with pnnx.

``export_step_ncnn(model, out_dir, h, w)`` traces the model's step graph (the ``export_step`` of
its kind in ``src/runtime/kinds.py``: the DiT's ``FrameletStep`` with its explicit KV cache, a
direct model's ``DirectStep`` or the student's ``RecurrentStep``), runs pnnx
with fp32 weights (``fp16=0``; ncnn can still use fp16 storage at run time), fails loudly when
pnnx left any op unconverted (pnnx exits 0 then and ncnn only fails at load time), and writes a
JSON file with the graph's input and output shapes, which the runtime reads instead of building
the torch graph again. One export per frame size (RoPE tables and the patch grid are baked in).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from src.runtime.step_export import step_graph, write_step_shapes

# ncnn layer types that mean pnnx kept a torch op it could not convert
_UNCONVERTED = re.compile(r"^(torch\.|Tensor\.|F\.|nn\.|aten::|pnnx\.(?!Input|Output))")


class ExportError(RuntimeError):
    """pnnx failed or left ops that ncnn cannot run."""


def find_pnnx() -> str:
    """The ``pnnx`` executable next to this interpreter (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / "pnnx"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("pnnx")
    if found is None:
        raise ExportError("the pnnx command was not found; install the project's dependencies (uv sync)")
    return found


def unconverted_layers(param_path: str | Path) -> list[str]:
    """Layer types in an ncnn ``.param`` that are torch ops pnnx left unconverted."""
    lines = Path(param_path).read_text().splitlines()
    bad = []
    for line in lines[2:]:  # magic number, then "layer_count blob_count"
        fields = line.split()
        if fields and _UNCONVERTED.match(fields[0]):
            bad.append(f"{fields[0]} ({fields[1]})")
    return bad


def run_pnnx(
    module: nn.Module, inputs: list[Tensor], out_dir: Path, name: str, *, timeout_s: float = 600
) -> dict[str, Path]:
    """Trace ``module`` on ``inputs`` (batch 1), convert with pnnx (fp32 weights) into
    ``out_dir/<name>.ncnn.{param,bin}`` and check that every op was converted."""
    out_dir = Path(out_dir).resolve()  # pnnx runs inside out_dir: relative paths would break
    out_dir.mkdir(parents=True, exist_ok=True)
    pt_path = out_dir / f"{name}.pt"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", category=FutureWarning
        )  # torch.jit.trace is deprecated; pnnx needs it
        traced = torch.jit.trace(module, tuple(inputs), check_trace=False)
    traced.save(str(pt_path))
    shape_arg = ",".join("[" + ",".join(str(d) for d in x.shape) + "]f32" for x in inputs)
    paths = {"param": out_dir / f"{name}.ncnn.param", "bin": out_dir / f"{name}.ncnn.bin"}
    command = [
        find_pnnx(),
        str(pt_path),
        f"inputshape={shape_arg}",
        "fp16=0",
        f"pnnxparam={out_dir / f'{name}.pnnx.param'}",
        f"pnnxbin={out_dir / f'{name}.pnnx.bin'}",
        f"pnnxpy={out_dir / f'{name}_pnnx.py'}",
        f"pnnxonnx={out_dir / f'{name}.pnnx.onnx'}",
        f"ncnnparam={paths['param']}",
        f"ncnnbin={paths['bin']}",
        f"ncnnpy={out_dir / f'{name}_ncnn.py'}",
    ]
    paths["param"].unlink(missing_ok=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=out_dir)
    if result.returncode != 0 or not paths["param"].exists():
        tail = (result.stdout + result.stderr)[-2000:]
        raise ExportError(f"pnnx failed (exit {result.returncode}) exporting {name}:\n{tail}")
    bad = unconverted_layers(paths["param"])
    if bad:
        raise ExportError(
            f"pnnx left {len(bad)} op(s) unconverted in {paths['param']}: {', '.join(sorted(set(bad)))}. "
            "ncnn cannot run this graph; rewrite those ops in an export-friendly form "
            "(rank <= 4 tensors, chunk instead of 5-D reshapes, rotate-half RoPE)."
        )
    return paths


def export_step_ncnn(
    model: nn.Module, out_dir: str | Path, h: int, w: int, *, name: str | None = None, timeout_s: float = 600
) -> dict[str, Path]:
    """Export the model's step graph at frame size ``h`` x ``w`` to ``out_dir/<name>.ncnn.{param,bin}``
    plus ``<name>.json`` (input and output shapes). Returns the paths of param, bin and shapes."""
    out_dir = Path(out_dir)
    name = name or f"{model.renderer_kind}_step_{h}x{w}"
    step, inputs = step_graph(model, h, w)
    paths = run_pnnx(step, inputs, out_dir, name, timeout_s=timeout_s)
    paths["shapes"] = write_step_shapes(out_dir / f"{name}.json", model, step, h, w)
    return paths

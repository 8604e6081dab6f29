"""What every runtime's export of a renderer model shares: the step graph with its example inputs,
the shapes JSON beside it, and the on-demand export folder inside the package.

A runtime (ncnn in ``src/runtime/ncnn_backend.py``, ONNX Runtime in
``src/runtime/onnx_backend.py``) exports the graph of the model's kind (``export_step`` in
``src/runtime/kinds.py``) for one frame size into ``<runtime>/<width>x<height>/`` of the package.
The folder is written to a staging folder and renamed (an interrupted export never leaves a
broken one), stores a hash of the weights and config it came from and the size of each file it
holds: changed weights (a ``git pull`` of the bundled models) or a damaged file (a truncated copy)
make it export again. Where the package folder is read-only (a download cache), the export goes
to ``$VELODREAM_CACHE/<runtime>/<package digest>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from src.common.errors import UserError
from src.common.io import atomic_write_json
from src.common.outputs import atomic_directory
from src.net.export_step import EMPTY_SLOT_BIAS
from src.runtime.kinds import model_kind
from src.runtime.package import RendererPackage, default_cache_dir

EXPORT_KEY_FILE = "source.json"  # the key of the weights and config an export was made from


def step_graph(model: nn.Module, h: int, w: int) -> tuple[nn.Module, list[Tensor]]:
    """The model's step graph at frame size ``h`` x ``w`` (eval mode) and the example inputs every
    exporter traces it on: zeros, with the noise level (if the kind has one) at 0.5."""
    kind = model_kind(model)
    step = kind.export_step(model.eval(), h, w).eval()
    inputs = [torch.zeros(shape) for shape in step.input_shapes()]
    if kind.sigma_input is not None:
        inputs[kind.sigma_input].fill_(0.5)  # the noise level
    return step, inputs


def write_step_shapes(path: str | Path, model: nn.Module, step: nn.Module, h: int, w: int) -> Path:
    """The export's JSON: its kind, input and output shapes and frame size, which the runtime
    reads instead of building the torch graph again."""
    meta = {
        "renderer_kind": model.renderer_kind,
        "inputs": step.input_shapes(),
        "outputs": step.output_shapes(),
        "frame_size": [h, w],
        "empty_slot_bias": EMPTY_SLOT_BIAS,
    }
    atomic_write_json(path, meta)
    return Path(path)


def export_key(package: RendererPackage) -> str:
    """A hash of the package files an export depends on (weights, model config, conditions)."""
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json", "conditions.json"):
        digest.update(name.encode())
        with open(package.path / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def export_dir(package: RendererPackage, runtime: str, height: int, width: int, key: str) -> Path:
    """``<package>/<runtime>/<W>x<H>``, or a folder of the cache where the package is read-only."""
    if os.access(package.path, os.W_OK):
        return package.path / runtime / f"{width}x{height}"
    return default_cache_dir() / runtime / key[:16] / f"{width}x{height}"


def _stored_key(directory: Path) -> str | None:
    try:
        return json.loads((directory / EXPORT_KEY_FILE).read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _damaged_files(directory: Path, names: list[str]) -> list[str]:
    """The files among ``names`` whose size differs from the one recorded at export (a truncated
    copy, a disk that filled up); an export from before sizes were recorded has none."""
    try:
        sizes = json.loads((directory / EXPORT_KEY_FILE).read_text()).get("sizes", {})
    except (OSError, ValueError, AttributeError):
        return []
    return [name for name in names if name in sizes and (directory / name).stat().st_size != sizes[name]]


def ensure_step_export(
    package: RendererPackage,
    height: int,
    width: int,
    *,
    runtime: str,
    files: list[str],
    write: Callable[[Path], None],
) -> Path:
    """The folder of the package's ``runtime`` export at this size, holding ``files``; made now by
    ``write(staging folder)`` if a file is missing or damaged, or if the export came from other
    weights or config. Anything else ``write`` leaves in the staging folder is dropped."""
    key = export_key(package)
    directory = export_dir(package, runtime, height, width, key)
    complete = all((directory / name).is_file() for name in files)
    if complete and _stored_key(directory) != key:
        print(
            f"the {runtime} export in {directory} was made from other weights or config: exporting again",
            flush=True,
        )
        complete = False
    elif complete and (damaged := _damaged_files(directory, files)):
        print(
            f"the {runtime} export in {directory} is damaged ({', '.join(damaged)} changed size since it "
            "was written): exporting again",
            flush=True,
        )
        complete = False
    elif not complete:
        print(
            f"exporting the model to {runtime} for {width}x{height} (once; kept in {directory})", flush=True
        )
    if complete:
        return directory

    def recognise(folder: Path) -> bool:  # an export folder from before output markers
        keep = (*files, EXPORT_KEY_FILE)
        return all(child.is_file() and child.name in keep for child in folder.iterdir())

    with atomic_directory(directory, kind=f"{runtime} export", recognise=recognise) as staging:
        write(staging)
        for name in files:
            if not (staging / name).is_file():
                raise UserError(f"the {runtime} export did not write {name}")
        for leftover in staging.iterdir():  # an exporter's intermediates (torchscript, ...) are not needed
            if leftover.name not in files and leftover.is_file():
                leftover.unlink()
        sizes = {name: (staging / name).stat().st_size for name in sorted(files)}
        (staging / EXPORT_KEY_FILE).write_text(json.dumps({"key": key, "sizes": sizes}) + "\n")
    return directory

"""The ncnn backend: a renderer model's exported step graph, run on the CPU or on Vulkan.

The export lives in the renderer package under ``ncnn/<width>x<height>/`` and is made on demand
the first time a frame size is asked for (written to a temporary folder, then renamed, so an
interrupted export never leaves a broken one). It stores a hash of the weights and config it
came from; when they change (a ``git pull`` of the bundled models) it is made again. Where the package folder is read-only (a
download cache), the export goes to ``$VELODREAM_CACHE/ncnn/<package digest>``.

The runners (``src/runtime/ncnn_runners.py``; the table of model kinds picks one):
``NcnnDenoiser`` implements the same ``CachedDenoiser`` protocol as the torch DiT
(``new_cache`` / ``denoise_framelet`` / ``push_context`` / ``denoise_framelet_and_push``) over a ``FixedKVCache`` of explicit
tensors, so the one rollout in ``src/diffusion/rollout.py`` drives both backends and they draw
the same noise: parity holds by construction, up to floating-point tolerance. Direct models
(one evaluation per step) run their exported ``DirectStep`` as they are; recurrent ones (the
student) run their ``RecurrentStep`` through ``NcnnRecurrent``, which has the torch model's
``initial_recurrence`` / ``forward_step``, so ``RecurrentRenderer`` threads the same feedback and
state through either backend.

On Vulkan, ncnn uses fp16 storage when asked (``--dtype float16``) and picks cooperative-matrix
(tensor-core) kernels by itself on GPUs that have them: its device line in the log says
``fp16-cm=1`` there.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from src.common.errors import UserError
from src.common.outputs import atomic_directory
from src.runtime.kinds import model_kind
from src.runtime.ncnn_export import ExportError, export_step_ncnn
from src.runtime.package import RendererPackage, default_cache_dir


class NcnnNet:
    """Runs an exported graph with ``ncnn.Net``: ``net(*inputs)`` -> output tensors (torch).

    ``use_vulkan`` picks the GPU (lavapipe on CPU-only machines); ``fp16`` turns on fp16 storage
    (and fp16 arithmetic unless ``fp16_arithmetic=False``); fp32 otherwise. Cooperative matrix
    is chosen by ncnn itself where the GPU has it. pnnx names the blobs ``in0..`` and ``out0..``.
    """

    def __init__(
        self,
        param_path: str | Path,
        bin_path: str | Path,
        *,
        num_inputs: int,
        num_outputs: int,
        use_vulkan: bool = False,
        fp16: bool = False,
        fp16_arithmetic: bool | None = None,
        num_threads: int = 2,
    ):
        import ncnn

        self._ncnn = ncnn
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.use_vulkan_compute = use_vulkan
        opt.num_threads = num_threads
        opt.use_fp16_storage = fp16
        opt.use_fp16_packed = fp16
        opt.use_fp16_arithmetic = fp16 if fp16_arithmetic is None else fp16_arithmetic
        opt.use_bf16_storage = False
        if self.net.load_param(str(param_path)) != 0 or self.net.load_model(str(bin_path)) != 0:
            raise ExportError(f"ncnn could not load {param_path}")
        self.input_blobs = [f"in{i}" for i in range(num_inputs)]
        self.output_blobs = [f"out{i}" for i in range(num_outputs)]

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if len(inputs) != len(self.input_blobs):
            raise ValueError(f"the graph takes {len(self.input_blobs)} inputs, got {len(inputs)}")
        ncnn = self._ncnn
        extractor = self.net.create_extractor()
        for blob, tensor in zip(self.input_blobs, inputs):
            array = np.ascontiguousarray(tensor.detach().cpu().float().numpy())
            # batch_index=0: pnnx drops the batch axis; clone() so ncnn owns its copy of the data
            extractor.input(blob, ncnn.Mat(array, batch_index=0).clone())
        outputs = []
        for blob in self.output_blobs:
            ret, mat = extractor.extract(blob)
            if ret != 0:
                raise ExportError(f"ncnn failed to compute {blob}")
            outputs.append(torch.from_numpy(mat.numpy(batch_index=0).copy()))
        return tuple(outputs)


NCNN_EXPORT_KIND = "ncnn export"
EXPORT_KEY_FILE = "source.json"  # the key of the weights and config an export was made from


def export_key(package: RendererPackage) -> str:
    """A hash of the package files an export depends on (weights, model config, conditions)."""
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json", "conditions.json"):
        digest.update(name.encode())
        with open(package.path / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _export_dir(package: RendererPackage, height: int, width: int, key: str) -> Path:
    inside = package.path / "ncnn" / f"{width}x{height}"
    if os.access(package.path, os.W_OK):
        return inside
    return default_cache_dir() / "ncnn" / key[:16] / f"{width}x{height}"


def _is_written_export(folder: Path) -> bool:
    """An export folder from before output markers: only the files ``ensure_export`` keeps."""
    return all(
        child.is_file() and child.name.endswith((".ncnn.param", ".ncnn.bin", ".json"))
        for child in folder.iterdir()
    )


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


def ensure_export(package: RendererPackage, height: int, width: int) -> tuple[Path, Path, dict]:
    """The package's ncnn export for this frame size, made now if missing or made from other
    weights or config (the export stores the hash of the files it came from, ``export_key``).

    Returns (param, bin, shapes): ``shapes`` is the export's JSON (input and output shapes).
    """
    key = export_key(package)
    directory = _export_dir(package, height, width, key)
    name = model_kind(package.model).export_name
    param, weights = directory / f"{name}.ncnn.param", directory / f"{name}.ncnn.bin"
    shapes = directory / f"{name}.json"
    complete = param.is_file() and weights.is_file() and shapes.is_file()
    if complete and _stored_key(directory) != key:
        print(
            f"the ncnn export in {directory} was made from other weights or config: exporting again",
            flush=True,
        )
    elif complete and (damaged := _damaged_files(directory, [param.name, weights.name, shapes.name])):
        print(
            f"the ncnn export in {directory} is damaged ({', '.join(damaged)} changed size since it was "
            "written): exporting again",
            flush=True,
        )
        complete = False
    if not complete or _stored_key(directory) != key:
        if not complete:
            print(f"exporting the model to ncnn for {width}x{height} (once; kept in {directory})", flush=True)
        with atomic_directory(directory, kind=NCNN_EXPORT_KIND, recognise=_is_written_export) as staging:
            paths = export_step_ncnn(package.model, staging, height, width, name=name)
            keep = {paths["param"].name, paths["bin"].name, paths["shapes"].name}
            for path in paths.values():
                if not path.is_file():
                    raise UserError(f"the ncnn export did not write {path.name}")
            for leftover in staging.iterdir():  # pnnx's intermediates (torchscript, onnx, ...) are not needed
                if leftover.name not in keep and leftover.is_file():
                    leftover.unlink()
            sizes = {name: (staging / name).stat().st_size for name in sorted(keep)}
            (staging / EXPORT_KEY_FILE).write_text(json.dumps({"key": key, "sizes": sizes}) + "\n")
    return param, weights, json.loads(shapes.read_text())


def load_ncnn_step(package: RendererPackage, *, height: int, width: int, use_vulkan: bool, fp16: bool):
    """The package's step graph at this size in ncnn, behind the same methods as the torch model:
    the ncnn runner of its kind (``src/runtime/kinds.py``): a ``NcnnDenoiser`` for a diffusion
    model, a ``NcnnDirect`` for a direct one, a ``NcnnRecurrent`` for a recurrent one
    (``src/runtime/ncnn_runners.py``)."""
    param, weights, shapes = ensure_export(package, height, width)
    net = NcnnNet(
        param,
        weights,
        num_inputs=len(shapes["inputs"]),
        num_outputs=len(shapes["outputs"]),
        use_vulkan=use_vulkan,
        fp16=fp16,
        num_threads=torch.get_num_threads(),
    )
    if use_vulkan:
        import ncnn

        device = ncnn.get_gpu_info(ncnn.get_default_gpu_index()).device_name()
        print(
            f"ncnn Vulkan on {device}, fp16 storage {'on' if fp16 else 'off'}; ncnn enables cooperative-matrix "
            "kernels itself where the device has them (its fp16-cm flag above)",
            flush=True,
        )
    return model_kind(shapes["renderer_kind"]).ncnn_runner(net, shapes, package.model)

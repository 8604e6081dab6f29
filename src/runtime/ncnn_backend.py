"""The ncnn backend: a renderer model's exported step graph, run on the CPU or on Vulkan.

The export lives in the renderer package under ``ncnn/<width>x<height>/`` and is made on demand
the first time a frame size is asked for (written to a temporary folder, then renamed, so an
interrupted export never leaves a broken one). It stores a hash of the weights and config it
came from; when they change (a ``git pull`` of the bundled models) it is made again. Where the package folder is read-only (a
download cache), the export goes to ``$VELODREAM_CACHE/ncnn/<package digest>``.

The runners (``src/runtime/step_runners.py``; the table of model kinds picks one):
``StepDenoiser`` implements the same ``CachedDenoiser`` protocol as the torch DiT
(``new_cache`` / ``denoise_framelet`` / ``push_context`` / ``denoise_framelet_and_push``) over a ``FixedKVCache`` of explicit
tensors, so the one rollout in ``src/diffusion/rollout.py`` drives both backends and they draw
the same noise: parity holds by construction, up to floating-point tolerance. Direct models
(one evaluation per step) run their exported ``DirectStep`` as they are; recurrent ones (the
student) run their ``RecurrentStep`` through ``StepRecurrent``, which has the torch model's
``initial_recurrence`` / ``forward_step``, so ``RecurrentRenderer`` threads the same feedback and
state through either backend.

On Vulkan, ncnn uses fp16 storage when asked (``--dtype float16``) and picks cooperative-matrix
(tensor-core) kernels by itself on GPUs that have them: its device line in the log says
``fp16-cm=1`` there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from src.runtime.kinds import model_kind
from src.runtime.ncnn_export import ExportError, export_step_ncnn
from src.runtime.package import RendererPackage
from src.runtime.step_export import ensure_step_export


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
        opt.openmp_blocktime = 0  # threads sleep when a layer ends instead of spinning (20 ms by default)
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


def ensure_export(package: RendererPackage, height: int, width: int) -> tuple[Path, Path, dict]:
    """The package's ncnn export for this frame size, made now if missing, damaged, or made from
    other weights or config (``ensure_step_export`` in ``src/runtime/step_export.py``).

    Returns (param, bin, shapes): ``shapes`` is the export's JSON (input and output shapes).
    """
    name = model_kind(package.model).export_name
    files = [f"{name}.ncnn.param", f"{name}.ncnn.bin", f"{name}.json"]

    def write(staging: Path) -> None:
        export_step_ncnn(package.model, staging, height, width, name=name)

    directory = ensure_step_export(package, height, width, runtime="ncnn", files=files, write=write)
    return directory / files[0], directory / files[1], json.loads((directory / files[2]).read_text())


def load_ncnn_step(
    package: RendererPackage, *, height: int, width: int, use_vulkan: bool, fp16: bool, threads: int
):
    """The package's step graph at this size in ncnn, behind the same methods as the torch model:
    the ncnn runner of its kind (``src/runtime/kinds.py``): a ``StepDenoiser`` for a diffusion
    model, a ``StepDirect`` for a direct one, a ``StepRecurrent`` for a recurrent one
    (``src/runtime/step_runners.py``)."""
    param, weights, shapes = ensure_export(package, height, width)
    net = NcnnNet(
        param,
        weights,
        num_inputs=len(shapes["inputs"]),
        num_outputs=len(shapes["outputs"]),
        use_vulkan=use_vulkan,
        fp16=fp16,
        num_threads=threads,
    )
    if use_vulkan:
        import ncnn

        device = ncnn.get_gpu_info(ncnn.get_default_gpu_index()).device_name()
        print(
            f"ncnn Vulkan on {device}, fp16 storage {'on' if fp16 else 'off'}; ncnn enables cooperative-matrix "
            "kernels itself where the device has them (its fp16-cm flag above)",
            flush=True,
        )
    return model_kind(shapes["renderer_kind"]).step_runner(net, shapes, package.model)

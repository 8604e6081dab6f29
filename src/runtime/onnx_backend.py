"""The ONNX Runtime backend: a renderer model's exported step graph, run by ``onnxruntime``.

The same step graph the ncnn backend exports (``step_graph`` in ``src/runtime/step_export.py``:
the DiT's ``FrameletStep`` with its explicit KV cache, a direct model's ``DirectStep``, the
student's ``RecurrentStep``) goes through ``torch.onnx.export`` into the package's
``onnx/<width>x<height>/<name>.onnx`` with the same shapes JSON beside it, made on demand, atomic
and keyed on the weights' hash like the ncnn export. ``OnnxNet`` has ``NcnnNet``'s call
(``net(*inputs)`` -> output tensors at their full shapes), so the runners of
``src/runtime/step_runners.py`` serve both runtimes and the one rollout drives them.

The exporter is torch's TorchScript one (``dynamo=False``): it needs only the ``onnx`` package,
not onnxscript, and exports these graphs in a few seconds. It has no rule for ``aten::rms_norm``
(the DiT's QK-norm), so one is registered here (``_rms_norm``). Opset 18.

Devices: ``--device cpu`` runs the CPU execution provider with the runtimes' thread count and
spinning off (``src/runtime/threads.py``). ``--device cuda`` asks for TensorRT, then CUDA, from an
``onnxruntime-gpu`` install (``pip install onnxruntime-gpu`` in place of ``onnxruntime``); that
path is not tested on the development machines, which have no GPU.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from src.common.errors import UserError
from src.runtime.kinds import model_kind
from src.runtime.package import RendererPackage
from src.runtime.step_export import ensure_step_export, step_graph, write_step_shapes

OPSET = 18
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _rms_norm(g, x, normalized_shape, weight, eps):
    """``aten::rms_norm`` as ONNX ops: ``x / sqrt(mean(x^2) + eps) * weight`` over the last
    ``len(normalized_shape)`` axes (ONNX's own RMSNormalization needs opset 23)."""
    from torch.onnx import symbolic_helper

    axes = list(range(-len(symbolic_helper._get_const(normalized_shape, "is", "normalized_shape")), 0))
    eps_value = symbolic_helper._maybe_get_const(eps, "f")
    eps_value = 1e-6 if eps_value is None or symbolic_helper._is_value(eps_value) else float(eps_value)
    square = g.op("Mul", x, x)
    mean = g.op("ReduceMean", square, g.op("Constant", value_t=torch.tensor(axes)), keepdims_i=1)
    root = g.op("Sqrt", g.op("Add", mean, g.op("Constant", value_t=torch.tensor(eps_value))))
    out = g.op("Div", x, root)
    return out if symbolic_helper._is_none(weight) else g.op("Mul", out, weight)


def export_step_onnx(model: nn.Module, out_dir: str | Path, h: int, w: int, *, name: str) -> dict[str, Path]:
    """Export the model's step graph at ``h`` x ``w`` to ``out_dir/<name>.onnx`` plus ``<name>.json``
    (input and output shapes); blobs are named ``in0..`` and ``out0..`` as pnnx names them."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    step, inputs = step_graph(model, h, w)
    path = out_dir / f"{name}.onnx"
    torch.onnx.register_custom_op_symbolic("aten::rms_norm", _rms_norm, OPSET)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            step,
            tuple(inputs),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[f"in{i}" for i in range(len(inputs))],
            output_names=[f"out{i}" for i in range(len(step.output_shapes()))],
        )
    return {"onnx": path, "shapes": write_step_shapes(out_dir / f"{name}.json", model, step, h, w)}


def ensure_onnx_export(package: RendererPackage, height: int, width: int) -> tuple[Path, dict]:
    """The package's ONNX export for this frame size (made now if missing, damaged or stale);
    returns the ``.onnx`` path and the shapes JSON."""
    name = model_kind(package.model).export_name
    files = [f"{name}.onnx", f"{name}.json"]

    def write(staging: Path) -> None:
        export_step_onnx(package.model, staging, height, width, name=name)

    directory = ensure_step_export(package, height, width, runtime="onnx", files=files, write=write)
    return directory / files[0], json.loads((directory / files[1]).read_text())


def onnx_providers(device: str) -> list[str]:
    """The execution providers for ``device``: the CPU's for cpu (and auto without a GPU provider);
    TensorRT and CUDA first, where this onnxruntime has them, for cuda/gpu (and auto)."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    gpu = [provider for provider in GPU_PROVIDERS if provider in available]
    if device == "cpu" or (device == "auto" and not gpu):
        return ["CPUExecutionProvider"]
    if device not in ("auto", "cuda", "gpu") and not device.startswith("cuda"):
        raise UserError(f"unknown device '{device}' for the onnxruntime backend", "Use cpu, cuda or auto.")
    if not gpu:
        raise UserError(
            f"--device {device} with the onnxruntime backend needs onnxruntime's CUDA or TensorRT provider, "
            f"and this one has only {', '.join(available)}",
            "Install onnxruntime-gpu in place of onnxruntime, or use --device cpu.",
        )
    return [*gpu, "CPUExecutionProvider"]


class OnnxNet:
    """Runs an exported graph with an ``onnxruntime.InferenceSession``: ``net(*inputs)`` -> output
    tensors (torch, full shapes), like ``NcnnNet``. ``num_threads`` is the intra-op pool's size;
    its threads sleep between runs instead of spinning (``session.intra_op.allow_spinning``)."""

    def __init__(self, onnx_path: str | Path, *, num_threads: int, providers: list[str] | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: not a line per unused initializer
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=providers or ["CPUExecutionProvider"]
        )
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.output_names = [node.name for node in self.session.get_outputs()]

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"the graph takes {len(self.input_names)} inputs, got {len(inputs)}")
        feed = {
            name: np.ascontiguousarray(tensor.detach().cpu().float().numpy())
            for name, tensor in zip(self.input_names, inputs)
        }
        return tuple(torch.from_numpy(out) for out in self.session.run(self.output_names, feed))


def load_onnx_step(package: RendererPackage, *, height: int, width: int, threads: int, device: str = "cpu"):
    """The package's step graph at this size in ONNX Runtime, behind the same methods as the torch
    model: the exported-step runner of its kind (``src/runtime/step_runners.py``)."""
    providers = onnx_providers(device)
    path, shapes = ensure_onnx_export(package, height, width)
    net = OnnxNet(path, num_threads=threads, providers=providers)
    return model_kind(shapes["renderer_kind"]).step_runner(net, shapes, package.model)

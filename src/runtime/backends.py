"""Building a renderer (``src/runtime/renderer.py``) for a package, a backend and a frame size.

``make_renderer(package, backend="torch" | "ncnn" | "onnxruntime", ...)`` is the one entry point of play, the
benchmark and ``evaluate``; ``torch_renderer(model, ...)`` serves validation during training,
where the model is not yet a package. Nothing here depends on which model class the package
holds: its ``renderer_kind`` picks the renderer's class from the table of model kinds
(``src/runtime/kinds.py``).

torch runs on the CPU or CUDA in fp32/bf16/fp16, optionally under ``torch.compile``; ncnn runs the
pnnx export of the model's step on the CPU or on Vulkan (fp16 storage with ``dtype=float16``);
onnxruntime runs the ONNX export of the same step on the CPU (or CUDA/TensorRT with
onnxruntime-gpu). ``threads`` is the runtimes' own thread count (``src/runtime/threads.py``).
"""

from __future__ import annotations

import torch

from src.common.errors import UserError
from src.runtime.kinds import model_kind
from src.runtime.ncnn_backend import load_ncnn_step
from src.runtime.onnx_backend import load_onnx_step
from src.runtime.package import RendererPackage, SamplingDefaults
from src.runtime.renderer import Renderer
from src.runtime.threads import set_torch_threads

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
BACKENDS = ("torch", "ncnn", "onnxruntime")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA GPU", "Use --device cpu.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UserError(f"unknown device '{device}'", "Use cpu, cuda or auto.")
    return device


def resolve_ncnn_device(device: str) -> bool:
    """ncnn runs on the CPU for --device cpu, on Vulkan for --device vulkan/cuda/gpu, auto = Vulkan if any."""
    if device in ("cpu",):
        return False  # before get_gpu_count: that starts Vulkan, which prints its device lines
    import ncnn

    gpus = ncnn.get_gpu_count()
    if device == "auto":
        return gpus > 0
    if gpus == 0:
        raise UserError(
            f"--device {device} with the ncnn backend needs a Vulkan device and none was found",
            "Install a Vulkan driver (libvulkan1 mesa-vulkan-drivers for a software one) or use --device cpu.",
        )
    return True


def check_frame_size(model, width: int, height: int) -> None:
    """A UserError when the model cannot render ``width`` x ``height`` frames."""
    try:
        model.check_frame_size(height, width)
    except ValueError as error:
        raise UserError(f"the model cannot render {error}", f"It takes {model.frame_size_hint()}.") from None


def _build(
    model, runner, *, backend: str, sampling: SamplingDefaults, num_denoising_steps, base: dict
) -> Renderer:
    """Wrap ``runner`` -- the torch model itself, or its ncnn export behind the same methods
    (``CachedDenoiser`` for diffusion models, ``forward_frames`` for direct ones,
    ``initial_recurrence``/``forward_step`` for recurrent ones) -- in the renderer of its kind."""
    return model_kind(model).renderer(
        model, runner, backend=backend, sampling=sampling, num_denoising_steps=num_denoising_steps, base=base
    )


def torch_renderer(
    model,
    *,
    sampling: SamplingDefaults,
    width: int,
    height: int,
    native_size: tuple[int, int] | None = None,
    num_denoising_steps: int | None = None,
    seed: int = 0,
) -> Renderer:
    """A renderer over a torch model as it is (its device and dtype; nothing is moved or compiled)."""
    check_frame_size(model, width, height)
    tensor = next(iter([*model.parameters(), *model.buffers()]))
    base = dict(
        frames_per_step=model.frames_per_step,
        native_size=native_size or (width, height),
        frame_size=(width, height),
        device=tensor.device,
        dtype=tensor.dtype,
        seed=seed,
    )
    return _build(
        model, model, backend="torch", sampling=sampling, num_denoising_steps=num_denoising_steps, base=base
    )


def make_renderer(
    package: RendererPackage,
    *,
    backend: str = "torch",
    width: int | None = None,
    height: int | None = None,
    num_denoising_steps: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    compile: bool = False,
    seed: int = 0,
    threads: int | None = None,
) -> Renderer:
    """The package's model as a renderer on ``backend`` at ``width`` x ``height`` (default: its own
    size), with ``threads`` CPU threads for torch and the runtime (None: torch's current count)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}'", f"Use {' or '.join(BACKENDS)}.")
    if dtype not in _DTYPES:
        raise UserError(f"unknown dtype '{dtype}'", f"Choose from {', '.join(_DTYPES)}.")
    width, height = width or package.width, height or package.height
    model = package.model
    check_frame_size(model, width, height)
    # torch also runs the rollout's own arithmetic on every backend; None leaves its count as it is
    threads = set_torch_threads(threads) if threads else torch.get_num_threads()
    if backend == "torch":
        device = resolve_device(device)
        # torch's own Module.to: diffusers' ModelMixin.to warns on every dtype argument that
        # "modules ... should be kept in float32: []" even when, as here, there are none
        model = torch.nn.Module.to(model, device=device, dtype=_DTYPES[dtype]).eval()
        if compile:
            model.compile_inference()
        return torch_renderer(
            model,
            sampling=package.sampling,
            width=width,
            height=height,
            native_size=(package.width, package.height),
            num_denoising_steps=num_denoising_steps,
            seed=seed,
        )

    return _exported_renderer(
        package, backend=backend, width=width, height=height, num_denoising_steps=num_denoising_steps,
        device=device, dtype=dtype, seed=seed, threads=threads,
    )  # fmt: skip


def _exported_renderer(
    package: RendererPackage, *, backend: str, width: int, height: int, num_denoising_steps: int | None,
    device: str, dtype: str, seed: int, threads: int,
) -> Renderer:  # fmt: skip
    """``make_renderer`` on the onnxruntime or ncnn backend: the package's exported step, with the
    rollout's own arithmetic in torch on the CPU."""
    if backend == "onnxruntime":
        runner = load_onnx_step(package, height=height, width=width, threads=threads, device=device)
    else:
        use_vulkan = resolve_ncnn_device(device)
        runner = load_ncnn_step(
            package,
            height=height,
            width=width,
            use_vulkan=use_vulkan,
            fp16=_DTYPES[dtype] == torch.float16,
            threads=threads,
        )
    base = dict(
        frames_per_step=package.model.frames_per_step,
        native_size=(package.width, package.height),
        frame_size=(width, height),
        device="cpu",
        dtype=torch.float32,
        seed=seed,
    )
    return _build(
        package.model,
        runner,
        backend=backend,
        sampling=package.sampling,
        num_denoising_steps=num_denoising_steps,
        base=base,
    )

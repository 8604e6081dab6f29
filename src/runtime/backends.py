"""Inference backends behind one interface: a framelet generator with a rolling context.

    backend.reset()                    forget the context (a new ride)
    backend.step(cond) -> frames       cond f C h w float32 (encoded) -> frames f 3 h w in [-1, 1]

``TorchBackend`` runs the DiT in torch (CPU or CUDA, fp32/bf16/fp16, optional torch.compile).
``NcnnBackend`` runs the pnnx export of one framelet step in ncnn (CPU, or Vulkan with fp16
storage where a Vulkan device exists) with the KV cache as explicit input/output tensors.
Both use the same Euler schedule and context re-noising, so they give the same frames up to
floating-point tolerance (see tests/test_runtime_parity.py).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from src.common.errors import UserError
from src.runtime.package import RendererPackage
from src.runtime.rollout import FrameletGenerator

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


class Backend(Protocol):
    name: str

    def reset(self) -> None: ...

    def step(self, cond: np.ndarray | torch.Tensor) -> np.ndarray: ...


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA GPU", "Use --device cpu.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UserError(f"unknown device '{device}'", "Use cpu, cuda or auto.")
    return device


class TorchBackend:
    name = "torch"

    def __init__(
        self,
        package: RendererPackage,
        *,
        height: int,
        width: int,
        num_denoising_steps: int,
        device: str = "cpu",
        dtype: str = "float32",
        compile: bool = False,
        seed: int = 0,
    ):
        if dtype not in _DTYPES:
            raise UserError(f"unknown dtype '{dtype}'", f"Choose from {', '.join(_DTYPES)}.")
        self.device = resolve_device(device)
        model = package.model.to(self.device).eval()
        if _DTYPES[dtype] != torch.float32:
            model = model.to(_DTYPES[dtype])
        if compile:
            model.forward_framelet = torch.compile(model.forward_framelet)
        self.generator = FrameletGenerator(
            model,
            height=height,
            width=width,
            num_denoising_steps=num_denoising_steps,
            shift=package.sampling.shift,
            context_sigma=package.sampling.context_sigma,
            seed=seed,
        )

    def reset(self) -> None:
        self.generator.reset()

    def step(self, cond: np.ndarray | torch.Tensor) -> np.ndarray:
        cond = torch.as_tensor(cond)[None]
        return self.generator.step(cond)[0].float().cpu().numpy()


def make_backend(
    name: str,
    package: RendererPackage,
    *,
    height: int,
    width: int,
    num_denoising_steps: int,
    device: str = "cpu",
    dtype: str = "float32",
    compile: bool = False,
    seed: int = 0,
) -> Backend:
    """Build the backend called ``name`` (torch or ncnn) for one renderer package and frame size."""
    if name == "torch":
        return TorchBackend(
            package,
            height=height,
            width=width,
            num_denoising_steps=num_denoising_steps,
            device=device,
            dtype=dtype,
            compile=compile,
            seed=seed,
        )
    if name == "ncnn":
        from src.runtime.ncnn_backend import NcnnBackend

        use_vulkan = resolve_ncnn_device(device)
        return NcnnBackend(
            package,
            height=height,
            width=width,
            num_denoising_steps=num_denoising_steps,
            use_vulkan=use_vulkan,
            fp16=dtype in ("float16", "fp16"),
            seed=seed,
        )
    raise UserError(f"unknown backend '{name}'", "Use torch or ncnn.")


def resolve_ncnn_device(device: str) -> bool:
    """ncnn runs on the CPU for --device cpu, on Vulkan for --device vulkan/cuda/gpu, auto = Vulkan if any."""
    import ncnn

    gpus = ncnn.get_gpu_count()
    if device in ("cpu",):
        return False
    if device == "auto":
        return gpus > 0
    if gpus == 0:
        raise UserError(
            f"--device {device} with the ncnn backend needs a Vulkan device and none was found",
            "Install a Vulkan driver (libvulkan1 mesa-vulkan-drivers for a software one) or use --device cpu.",
        )
    return True

"""The ncnn backend: the pnnx export of one framelet step, run on the CPU or on Vulkan.

The export lives in the renderer package under ``ncnn/<width>x<height>/`` and is made on demand
the first time a frame size is asked for (written to a temporary folder, then renamed, so an
interrupted export never leaves a broken one). Where the package folder is read-only (a
download cache), the export goes to ``$VELODREAM_CACHE/ncnn/<package>``.

The KV cache is a pair of explicit tensors of fixed size fed to every step and rolled after
each generated framelet, exactly as the torch backend's rolling cache; the random draws
(initial noise, context re-noising) are the same as ``FrameletGenerator``'s for the same seed,
so both backends render the same frames up to floating-point tolerance.

On Vulkan, ncnn uses fp16 storage when asked (``--dtype float16``) and picks cooperative-matrix
(tensor-core) kernels by itself on GPUs that have them: its device line in the log says
``fp16-cm=1`` there.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from src.common.errors import UserError
from src.common.io import atomic_directory
from src.diffusion.flow_matching import euler_sample, make_sigmas
from src.net.export_step import FrameletStep, NcnnFrameletStep, export_ncnn
from src.runtime.package import RendererPackage


def _export_dir(package: RendererPackage, height: int, width: int) -> Path:
    inside = package.path / "ncnn" / f"{width}x{height}"
    if os.access(package.path, os.W_OK):
        return inside
    from src.play.checkpoints import default_cache_dir

    digest = hashlib.sha256((package.path / "model.safetensors").read_bytes()).hexdigest()[:16]
    return default_cache_dir() / "ncnn" / digest / f"{width}x{height}"


def ensure_export(package: RendererPackage, height: int, width: int) -> tuple[Path, Path]:
    """The package's ncnn export for this frame size, made now if missing. Returns (param, bin)."""
    directory = _export_dir(package, height, width)
    name = "framelet_step"
    param, weights = directory / f"{name}.ncnn.param", directory / f"{name}.ncnn.bin"
    if param.is_file() and weights.is_file():
        return param, weights
    print(f"exporting the model to ncnn for {width}x{height} (once; kept in {directory})", flush=True)
    with atomic_directory(directory) as staging:
        paths = export_ncnn(package.model, staging, height, width, name=name)
        for key in ("param", "bin"):
            if not paths[key].is_file():
                raise UserError(f"the ncnn export did not write {paths[key].name}")
        keep = {paths["param"].name, paths["bin"].name, paths["shapes"].name}
        for leftover in staging.iterdir():  # pnnx's intermediates (torchscript, onnx, ...) are not needed
            if leftover.name not in keep and leftover.is_file():
                leftover.unlink()
    return param, weights


class NcnnBackend:
    name = "ncnn"

    def __init__(
        self,
        package: RendererPackage,
        *,
        height: int,
        width: int,
        num_denoising_steps: int,
        use_vulkan: bool = False,
        fp16: bool = False,
        seed: int = 0,
        num_threads: int | None = None,
    ):
        param, weights = ensure_export(package, height, width)
        self.step_module = FrameletStep(package.model, height, width)  # shapes and cache helpers only
        self.net = NcnnFrameletStep(
            param,
            weights,
            use_vulkan=use_vulkan,
            fp16=fp16,
            num_threads=num_threads or torch.get_num_threads(),
        )
        if use_vulkan:
            import ncnn

            device = ncnn.get_gpu_info(ncnn.get_default_gpu_index()).device_name()
            print(
                f"ncnn Vulkan on {device}, fp16 storage {'on' if fp16 else 'off'}; ncnn enables cooperative-matrix "
                "kernels itself where the device has them (its fp16-cm flag above)",
                flush=True,
            )
        self.frames_per_framelet = int(package.model.config.frames_per_token)
        self.height, self.width = height, width
        self.sigmas = make_sigmas(num_denoising_steps, package.sampling.shift)
        self.context_sigma = package.sampling.context_sigma
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        self.past_k, self.past_v, self.attn_bias = self.step_module.empty_inputs()
        self.generator = torch.Generator().manual_seed(self.seed)

    def _run(self, x: torch.Tensor, cond: torch.Tensor, sigma: float):
        """x: f 3 h w, cond: f C h w -> (x0 f 3 h w, new_k, new_v)."""
        f, _, h, w = x.shape
        x0, new_k, new_v = self.net(
            x.reshape(1, -1, h, w),
            cond.reshape(1, -1, h, w),
            torch.full((1, 1), float(sigma)),
            self.past_k,
            self.past_v,
            self.attn_bias,
        )
        return x0.reshape(f, 3, h, w), new_k, new_v

    @torch.no_grad()
    def step(self, cond: np.ndarray | torch.Tensor) -> np.ndarray:
        cond = torch.as_tensor(cond, dtype=torch.float32)  # f C h w
        f = cond.shape[0]
        noise = torch.randn((1, f, 3, self.height, self.width), generator=self.generator)[0]

        def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return self._run(x, cond, float(sigma.reshape(-1)[0]))[0]

        frames = euler_sample(denoiser, noise * float(self.sigmas[0]), self.sigmas)
        context_noise = torch.randn((1, *frames.shape), generator=self.generator)[0]
        s = self.context_sigma
        _, new_k, new_v = self._run((1 - s) * frames + s * context_noise, cond, s)
        self.past_k, bias = FrameletStep.roll(self.past_k, new_k, self.attn_bias)
        self.past_v, _ = FrameletStep.roll(self.past_v, new_v, self.attn_bias)
        self.attn_bias = bias
        return frames.clamp(-1, 1).numpy()

"""One DiT denoiser step with an explicit, fixed-size KV cache, and its ncnn export.

``FrameletStep(model, h, w)`` is the exported graph. Inputs (batch 1, rank <= 4):

    x_noisy    1 (f*3) h w      the framelet's frames stacked on channels
    cond       1 (f*C) h w      its encoded condition planes, stacked the same way
    sigma      1 1              its noise level
    past_k     1 (B*H) K d      keys of the W-1 cached framelets, blocks x heads on axis 1,
    past_v     1 (B*H) K d      K = (W-1) * L tokens, oldest framelet first (QK-normed, unrotated)
    attn_bias  1 L (K+L)        additive attention bias: 0, or -1e4 on empty cache slots

Outputs: ``x0_pred`` 1 (f*3) h w, ``new_k`` and ``new_v`` 1 (B*H) L d (this framelet's keys
and values). One graph serves both uses of a step: denoising (ignore ``new_k``/``new_v``)
and pushing context (feed the generated framelet re-noised to sigma_ctx, keep
``new_k``/``new_v``, roll them into the cache: ``past = cat(past[:, :, L:], new, dim=2)``).

Not-yet-full cache at the start of a ride: the cache is always K tokens long; empty slots
are the *oldest* ones, zero-filled and masked by ``attn_bias = -1e4`` (exp(-1e4) is 0 in
fp32 and fp16). This equals the eager model's shorter cache exactly because the current
framelet always sits at window position W-1 (RoPE positions are window-relative).
``KVCache.export_tensors`` and ``FrameletStep.empty_inputs`` build these tensors.

``export_ncnn`` traces the wrapper, runs pnnx (fp32 weights), and fails loudly if any op
stayed unconverted. One export per frame size (RoPE tables and patch grid are baked in).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from src.common.io import atomic_write_json
from src.net.dit import VelodreamDiT

INPUT_NAMES = ("x_noisy", "cond", "sigma", "past_k", "past_v", "attn_bias")
OUTPUT_NAMES = ("x0_pred", "new_k", "new_v")
EMPTY_SLOT_BIAS = -1e4

# ncnn layer types that mean pnnx kept a torch op it could not convert
_UNCONVERTED = re.compile(r"^(torch\.|Tensor\.|F\.|nn\.|aten::|pnnx\.(?!Input|Output))")


class ExportError(RuntimeError):
    """pnnx failed or left ops that ncnn cannot run."""


class FrameletStep(nn.Module):
    """``forward(x_noisy, cond, sigma, past_k, past_v, attn_bias) -> (x0_pred, new_k, new_v)``."""

    def __init__(self, model: VelodreamDiT, h: int, w: int):
        super().__init__()
        cfg = model.config
        if cfg.window_framelets < 2:
            raise ValueError("exporting a step needs window_framelets >= 2 (a model without context)")
        self.model = model
        self.h, self.w = h, w
        self.grid_h, self.grid_w = model.grid_size(h, w)
        self.tokens_per_framelet = self.grid_h * self.grid_w
        self.context_tokens = (cfg.window_framelets - 1) * self.tokens_per_framelet
        self.num_blocks, self.num_heads, self.head_dim = cfg.num_blocks, cfg.num_heads, model.head_dim
        current = cfg.window_framelets - 1
        cos_q, sin_q = model.rope_tables(self.grid_h, self.grid_w, (current,), "cpu", torch.float32)
        cos_k, sin_k = model.rope_tables(
            self.grid_h, self.grid_w, tuple(range(current + 1)), "cpu", torch.float32
        )
        self.register_buffer("cos_q", cos_q.clone(), persistent=False)
        self.register_buffer("sin_q", sin_q.clone(), persistent=False)
        self.register_buffer("cos_k", cos_k.clone(), persistent=False)
        self.register_buffer("sin_k", sin_k.clone(), persistent=False)

    def forward(
        self,
        x_noisy: Tensor,  # 1 (f 3) h w
        cond: Tensor,  # 1 (f C) h w
        sigma: Tensor,  # 1 1
        past_k: Tensor,  # 1 (B H) K d
        past_v: Tensor,  # 1 (B H) K d
        attn_bias: Tensor,  # 1 L (K + L)
    ) -> tuple[Tensor, Tensor, Tensor]:
        heads = self.num_heads
        keys = [past_k[:, i * heads : (i + 1) * heads] for i in range(self.num_blocks)]
        values = [past_v[:, i * heads : (i + 1) * heads] for i in range(self.num_blocks)]
        out, new_k, new_v = self.model.forward_framelet(
            x_noisy,
            cond,
            sigma,
            past_k=keys,
            past_v=values,
            cos_q=self.cos_q,
            sin_q=self.sin_q,
            cos_k=self.cos_k,
            sin_k=self.sin_k,
            attn_mask=attn_bias.unsqueeze(1),  # 1 1 L (K + L), broadcast over heads
            grid_h=self.grid_h,
            grid_w=self.grid_w,
        )
        return out, torch.cat(new_k, dim=1), torch.cat(new_v, dim=1)

    def input_shapes(self) -> list[tuple[int, ...]]:
        cfg = self.model.config
        f = cfg.frames_per_token
        bh = self.num_blocks * self.num_heads
        L, K = self.tokens_per_framelet, self.context_tokens
        return [
            (1, f * cfg.image_channels, self.h, self.w),
            (1, f * cfg.condition_channels, self.h, self.w),
            (1, 1),
            (1, bh, K, self.head_dim),
            (1, bh, K, self.head_dim),
            (1, L, K + L),
        ]

    def empty_inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        """``past_k``, ``past_v``, ``attn_bias`` for the first framelet of a ride (empty cache)."""
        shapes = self.input_shapes()
        bias = torch.full(shapes[5], EMPTY_SLOT_BIAS)
        bias[:, :, self.context_tokens :] = 0.0
        return torch.zeros(shapes[3]), torch.zeros(shapes[4]), bias

    @staticmethod
    def roll(past: Tensor, new: Tensor, attn_bias: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``new`` (1 (B H) L d) to a fixed-size cache, dropping the oldest framelet;
        the bias un-masks one more slot. Returns (past, attn_bias)."""
        L = new.shape[2]
        past = torch.cat([past[:, :, L:], new], dim=2)
        bias = torch.cat(
            [attn_bias[:, :, L:-L], torch.zeros_like(attn_bias[:, :, :L]), attn_bias[:, :, -L:]], dim=2
        )
        return past, bias


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


def export_ncnn(
    model: VelodreamDiT,
    out_dir: str | Path,
    h: int,
    w: int,
    *,
    name: str | None = None,
    timeout_s: float = 600,
) -> dict[str, Path]:
    """Export one denoiser step at frame size ``h`` x ``w`` to ``out_dir/<name>.ncnn.{param,bin}``.

    Runs pnnx with fp32 weights (``fp16=0``; ncnn can still use fp16 storage at run time).
    Raises ``ExportError`` when pnnx fails or any op was left unconverted (pnnx exits 0 then
    and ncnn only fails at load time). Returns the paths of param, bin and the shape file.
    """
    out_dir = Path(out_dir)
    name = name or f"framelet_step_{h}x{w}"
    step = FrameletStep(model.eval(), h, w).eval()
    inputs = [torch.zeros(shape) for shape in step.input_shapes()]
    inputs[2].fill_(0.5)
    paths = run_pnnx(step, inputs, out_dir, name, timeout_s=timeout_s)
    paths["shapes"] = out_dir / f"{name}.json"
    meta = {
        "inputs": dict(zip(INPUT_NAMES, step.input_shapes())),
        "outputs": {
            "x0_pred": step.input_shapes()[0],
            "new_k": (1, step.num_blocks * step.num_heads, step.tokens_per_framelet, step.head_dim),
            "new_v": (1, step.num_blocks * step.num_heads, step.tokens_per_framelet, step.head_dim),
        },
        "frame_size": [h, w],
        "tokens_per_framelet": step.tokens_per_framelet,
        "empty_slot_bias": EMPTY_SLOT_BIAS,
    }
    atomic_write_json(paths["shapes"], meta)
    return paths


class NcnnFrameletStep:
    """Runs an exported step with ``ncnn.Net``; same call and outputs (torch tensors) as
    ``FrameletStep``. ``use_vulkan`` picks the GPU (lavapipe on CPU-only machines);
    ``fp16`` turns on fp16 storage (and fp16 arithmetic unless ``fp16_arithmetic=False``);
    fp32 otherwise. Cooperative matrix is chosen by ncnn itself where the GPU has it."""

    def __init__(
        self,
        param_path: str | Path,
        bin_path: str | Path,
        *,
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
        self.input_blobs = [f"in{i}" for i in range(len(INPUT_NAMES))]
        self.output_blobs = [f"out{i}" for i in range(len(OUTPUT_NAMES))]

    def __call__(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        if len(inputs) != len(INPUT_NAMES):
            raise ValueError(f"expected inputs {INPUT_NAMES}")
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

"""Equal-work benchmark: our DiT's framelet against the peer's own code and a plain causal DiT,
all at the same shapes, steps and context window.

- ``peer`` (with ``--peer_dir``): Spokester1's own ``generate`` and ``ViTDenoiser``, imported
  from an unpacked snapshot of its repository (``src/bench/peer.py``), called as its play loop
  calls them; the row names the snapshot's commit.
- ``reference``: a plain causal DiT written here (``src/bench/plain_dit.py``), so the comparison
  also runs without outside code; sampled the peer's way (the last pass's keys are the context).
- ``ours``: the same schedule through ``src.diffusion.rollout`` (``context_from_last_step``), or
  ``ours_steps`` passes (1: the distilled model's one pass, whose keys become the context);
  ``ours_context_pass`` adds the teacher's context pass; ``ours_ncnn`` is ours exported to ncnn
  and run on the CPU as play runs it; ``ours_light`` / ``ours_light_ncnn`` are the same with the
  lighter block every preset builds (``LIGHTER_BLOCK``).

All use random weights, batch 1, fp32 on the CPU, the same thread count; rounds interleave the
systems so machine load hits them alike. Each row also gives the parameters and the FLOPs of one
framelet with a full context window (``torch.utils.flop_counter``).

    uv run python -m src.scripts.bench_equal_work
    uv run python -m src.scripts.bench_equal_work --systems '[reference, ours, ours_stem_smooth]' --rounds 5
    uv run python -m src.scripts.bench_equal_work --ours_steps 1 --compile true
    uv run python -m src.scripts.bench_equal_work --peer_dir ../peer/spokester1 --threads 1 \\
        --systems '[reference, ours, ours_context_pass, ours_ncnn]'
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from src.bench.config import SYSTEMS, EqualWorkConfig
from src.bench.peer import PeerCode, PeerSampler, build_peer_model, load_peer
from src.bench.plain_dit import PlainCausalDiT, PlainSampler
from src.common.errors import UserError
from src.common.io import report_table_and_json
from src.diffusion.flow_matching import make_sigmas
from src.diffusion.rollout import sample_framelet
from src.net.dit import VelodreamDiT
from src.net.dit_sizes import LIGHTER_BLOCK
from src.runtime.kinds import model_kind
from src.runtime.ncnn_backend import NcnnNet
from src.runtime.ncnn_export import export_step_ncnn

# -- ours ---------------------------------------------------------------------------------------


class OurSampler:
    """Ours through the one rollout of play: ``model`` is the torch DiT or its exported step
    (``StepDenoiser``); the last pass's keys become the context, or (``context_from_last_step``
    False) a context pass of its own pushes them."""

    def __init__(self, model, *, steps: int, h: int, w: int, context_from_last_step: bool = True):
        self.model, self.sigmas, self.context_from_last_step = (
            model,
            make_sigmas(steps),
            context_from_last_step,
        )
        self.cache = model.new_cache(1, h, w)

    def framelet(self, noise: Tensor, cond: Tensor) -> Tensor:
        x, _ = sample_framelet(
            self.model,
            noise,
            cond,
            self.cache,
            sigmas=self.sigmas,
            context_sigma=0.0,
            context_from_last_step=self.context_from_last_step,
        )
        return x


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere (zero-initialised adaLN gates would skip work in neither model,
    but make the outputs meaningless)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.02 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def ncnn_runner(model: VelodreamDiT, config: EqualWorkConfig):
    """Our DiT exported to ncnn at the benchmark's frame size and loaded as play loads it (CPU,
    fp32, the benchmark's thread count), behind the torch model's methods."""

    r = config.resolution
    with tempfile.TemporaryDirectory(prefix="equal_work_ncnn_") as directory:  # ncnn reads it all at load
        paths = export_step_ncnn(model, directory, r, r, name="framelet_step")
        shapes = json.loads(Path(paths["shapes"]).read_text())
        net = NcnnNet(
            paths["param"],
            paths["bin"],
            num_inputs=len(shapes["inputs"]),
            num_outputs=len(shapes["outputs"]),
            num_threads=config.threads or torch.get_num_threads(),
        )
    return model_kind(model).step_runner(net, shapes, model)


def build_system(name: str, config: EqualWorkConfig):
    c = config
    if name == "reference":
        model = PlainCausalDiT(
            dim=c.hidden_dim,
            blocks=c.num_blocks,
            heads=c.num_heads,
            patch=c.patch_size,
            frames=c.frames_per_framelet,
            cond_channels=c.condition_channels,
        )
        randomize(model, c.seed)
        if c.compile:
            model.network = torch.compile(model.network)
        return model, PlainSampler(model, steps=c.steps, window=c.window_framelets)
    if name not in SYSTEMS or name == "peer":
        raise UserError(f"unknown system {name!r}", f"choose from {', '.join(SYSTEMS)}")
    grid = c.resolution // c.patch_size
    stem_smooth = name == "ours_stem_smooth"
    smooth = stem_smooth or name == "ours_smooth_half"
    model = VelodreamDiT(
        hidden_dim=c.hidden_dim,
        num_blocks=c.num_blocks,
        num_heads=c.num_heads,
        patch_size=c.patch_size,
        frames_per_framelet=c.frames_per_framelet,
        condition_channels=c.condition_channels,
        window_framelets=c.window_framelets,
        max_grid_h=grid,
        max_grid_w=grid,
        stem_channels=32 if stem_smooth else 0,
        refine_channels=32 if stem_smooth else 0,
        decoder="smooth" if smooth else "patch",
        decoder_scale=2 if name == "ours_smooth_half" else 1,
        **(LIGHTER_BLOCK if name.startswith("ours_light") else {}),
    )
    randomize(model, c.seed)
    exported = name.endswith("_ncnn")
    runner = ncnn_runner(model, c) if exported else model
    if c.compile and not exported:
        model.compile_inference()
    sampler = OurSampler(
        runner,
        steps=c.ours_steps or c.steps,
        h=c.resolution,
        w=c.resolution,
        context_from_last_step=name != "ours_context_pass",
    )
    return model, sampler


def build_peer_system(code: PeerCode, config: EqualWorkConfig):
    """The peer's model at the benchmark's shapes with random weights, and its own generation."""
    c = config
    model, peer_config = build_peer_model(
        code,
        hidden_dim=c.hidden_dim,
        num_blocks=c.num_blocks,
        num_heads=c.num_heads,
        patch_size=c.patch_size,
        frames_per_framelet=c.frames_per_framelet,
    )
    randomize(model, c.seed).requires_grad_(False)
    if c.compile:
        model = torch.compile(model, fullgraph=True, dynamic=False)  # as its play's should_compile does
    model.peer_config = peer_config
    return model, PeerSampler(code, model, steps=c.steps, window=c.window_framelets, patch=c.patch_size)


def framelet_flops(name: str, model: nn.Module, sampler, config: EqualWorkConfig, inputs) -> int:
    """FLOPs of one framelet with a full context window (torch's FlopCounterMode). The ncnn system
    is counted on its torch graph: the same model, the same passes."""
    if name.endswith("_ncnn"):
        r = config.resolution
        sampler = OurSampler(model, steps=config.ours_steps or config.steps, h=r, w=r)
        for _ in range(config.window_framelets):
            sampler.framelet(*inputs())
    with FlopCounterMode(display=False) as counter:
        sampler.framelet(*inputs())
    return counter.get_total_flops()


def time_rounds(systems: dict, config: EqualWorkConfig, inputs) -> dict[str, list[float]]:
    """Interleaved rounds: each times every system for ``framelets_per_round`` framelets (the
    round's number is their median, in ms)."""
    rounds: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(config.rounds):
        for name, (_, sampler) in systems.items():
            times = []
            for _ in range(config.framelets_per_round):
                noise, cond = inputs()
                start = time.perf_counter()
                sampler.framelet(noise, cond)
                times.append((time.perf_counter() - start) * 1e3)
            rounds[name].append(statistics.median(times))
    return rounds


def check_config(config: EqualWorkConfig) -> None:
    """The refusals of shapes and steps (one line each); with a peer_dir, the peer joins first."""
    if config.resolution % config.patch_size:
        raise UserError(
            f"resolution {config.resolution} is not a multiple of patch_size {config.patch_size}",
            "pick a resolution that the patch size divides",
        )
    if config.ours_steps < 0 or config.steps < 1:
        raise UserError(
            f"steps {config.steps} / ours_steps {config.ours_steps}",
            "give steps >= 1 and ours_steps >= 0 (0: the same as steps)",
        )
    config.check()


@torch.no_grad()
def run_equal_work(config: EqualWorkConfig) -> dict:
    """Build every system, warm each up, count its FLOPs and time it in interleaved rounds; the
    rows, the machine and (with a peer_dir) where the peer's code came from."""
    check_config(config)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    peer = load_peer(config.peer_dir, config.peer_commit) if config.peer_dir else None
    if config.threads:
        torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    f, r = config.frames_per_framelet, config.resolution
    systems = {
        name: build_peer_system(peer, config) if name == "peer" else build_system(name, config)
        for name in config.systems
    }

    def inputs():
        noise = torch.randn(1, f, 3, r, r, generator=generator)
        return noise, torch.randn(1, f, config.condition_channels, r, r, generator=generator)

    for _, sampler in systems.values():
        for _ in range(config.warmup_framelets):
            sampler.framelet(*inputs())
    flops = {
        name: framelet_flops(name, model, sampler, config, inputs)
        for name, (model, sampler) in systems.items()
    }
    rounds = time_rounds(systems, config, inputs)
    result = {
        "machine": machine_record(load_before),
        "config": dataclasses.asdict(config),
        "rows": result_rows(systems, flops, rounds),
    }
    if peer is not None:
        result["peer"] = {
            "dir": str(peer.directory),
            "commit": peer.commit,
            "stubbed_imports": peer.stubbed_imports,
            "model_config": systems["peer"][0].peer_config,
        }
    return result


def machine_record(load_before: tuple[float, float, float] | None) -> dict:
    """The machine the rounds ran on, with its load average before the systems were built and now."""
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,  # 1, 5 and 15 minutes, before the systems are built
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,  # after the rounds
    }


def result_rows(systems: dict, flops: dict[str, float], rounds: dict[str, list[float]]) -> list[dict]:
    """One row per system: parameters, FLOPs per framelet, its rounds and the ratios between systems."""
    rows = [
        {
            "system": name,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "gflops_per_framelet": flops[name] / 1e9,
            "ms_per_framelet_rounds": rounds[name],
            "best_ms": min(rounds[name]),
            "median_ms": statistics.median(rounds[name]),
        }
        for name, (model, _) in systems.items()
    ]
    add_ratios(rows, rounds)
    return rows


def add_ratios(rows: list[dict], rounds: dict[str, list[float]]) -> None:
    """``vs reference``: time over the reference's (best, and per round); ``rate vs peer``:
    framelets per second over the peer's (the peer's time over this row's, best and per round)."""
    for row in rows:
        mine = row["ms_per_framelet_rounds"]
        if "reference" in rounds:
            row["best_vs_reference"] = row["best_ms"] / min(rounds["reference"])
            row["per_round_vs_reference"] = [a / b for a, b in zip(mine, rounds["reference"])]
        if "peer" in rounds:
            row["best_rate_vs_peer"] = min(rounds["peer"]) / row["best_ms"]
            row["per_round_rate_vs_peer"] = [b / a for a, b in zip(mine, rounds["peer"])]


def format_table(result: dict) -> str:
    rounds = result["config"]["rounds"]
    header = f"{'system':>17} {'params':>7} {'GFLOP':>6} "
    header += " ".join(f"{'round ' + str(i + 1):>8}" for i in range(rounds))
    header += f" {'best':>7} {'x peer':>7} {'vs ref':>7}"
    lines = [header, "-" * len(header)]
    for row in result["rows"]:
        cells = " ".join(f"{ms:>8.1f}" for ms in row["ms_per_framelet_rounds"])
        rate = f"{row['best_rate_vs_peer']:>7.2f}" if "best_rate_vs_peer" in row else f"{'':>7}"
        ratio = f"{row['best_vs_reference']:>7.2f}" if "best_vs_reference" in row else f"{'':>7}"
        lines.append(
            f"{row['system']:>17} {row['params_m']:>6.2f}M {row['gflops_per_framelet']:>6.2f} {cells} "
            f"{row['best_ms']:>7.1f} {rate} {ratio}"
        )
    c = result["config"]
    lines.append(
        f"(ms per {c['frames_per_framelet']}-frame framelet, median of {c['framelets_per_round']} per round, "
        f"{c['resolution']}², patch {c['patch_size']}, {c['steps']} steps"
        f"{' (ours: ' + str(c['ours_steps']) + ')' if c['ours_steps'] else ''}, window {c['window_framelets']}, "
        f"{result['machine']['torch_threads']} threads{', compiled' if c['compile'] else ''}; "
        "GFLOP per framelet (ours_ncnn: its torch graph's); x peer = the peer's best / best (framelet "
        "rate); vs ref = best / reference's best)"
    )
    if "peer" in result:
        peer = result["peer"]
        stubs = ", ".join(peer["stubbed_imports"]) or "none"
        lines.append(
            f"(peer: its own code at commit {peer['commit']} from {peer['dir']}; stubbed imports: {stubs})"
        )
    return "\n".join(lines)


def run_and_report(config: EqualWorkConfig) -> dict:
    result = run_equal_work(config)
    return report_table_and_json(format_table(result), result, config.json_out)

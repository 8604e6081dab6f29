"""How fast the training data path delivers clips, against what a GPU step consumes.

``measure_loader`` reads training batches from a prepared dataset as ``train_net`` does on a GPU
(``TrainingData.batches``: the workers read crops and frame skips of the memory-mapped shards),
with 0, 1, 2... DataLoader workers, and reports clips and frames per second after a warm-up;
then again with the GPU's part of the batch (mirror, colour jitter, encoding, condition
augmentations: ``ClipDataset.finish_batch``) run in the main process on ``finish_device`` (the
CPU by default; ``cuda`` on a GPU machine times the GPU's share itself).
``training_flops_per_clip`` counts a model's training FLOPs for one clip with torch's FLOP
counter (forward, and backward as twice the forward), so the two can be compared:
``frames/s a GPU consumes = GPU FLOP/s x utilisation / FLOPs per frame``.
"""

from __future__ import annotations

import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from src.bench.config import BenchDataConfig
from src.common.config import load_config
from src.common.io import atomic_write_json
from src.data.loader import step_batches
from src.train.config import TrainConfig
from src.train.data import TrainingData
from src.train.model_io import build_model


def _train_config(config: BenchDataConfig, num_workers: int):

    overrides = ["--data.dataset", config.dataset, "--data.num_workers", str(num_workers)]
    if config.batch_size is not None:
        overrides += ["--data.batch_size", str(config.batch_size)]
    return load_config(TrainConfig, *config.presets, overrides=overrides)


def measure_loader(config: BenchDataConfig, num_workers: int, *, finish: bool = False) -> dict:
    """Clips and frames per second of the training batches with ``num_workers`` workers.

    ``finish=False``: what the loader delivers to a GPU (``TrainingData.batches`` on a GPU device:
    the workers only read, ``raw_train_batch``). ``finish=True``: the same batches, then encoded
    and augmented in this process on ``config.finish_device`` (``finish_batch``), the work a GPU
    does in its step.
    """

    device = torch.device(config.finish_device)

    data = TrainingData(_train_config(config, num_workers))
    batches = step_batches(data.raw_train_batch, num_workers=num_workers)
    timed = config.finish_batches if finish else config.batches
    try:
        for _ in range(config.warmup_batches):  # worker start-up, file caches (and the device's kernels)
            warm = next(batches)
            if finish:
                data._train.finish_batch(warm, device)
        clips = frames = 0
        start = time.perf_counter()
        for _ in range(timed):
            batch = next(batches)
            if finish:
                batch = data._train.finish_batch(batch, device)
            b, t = batch["frames"].shape[:2]
            clips, frames = clips + b, frames + b * t
        if finish and device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    finally:
        batches.close()  # stops the DataLoader's workers
    height, width = batch["frames"].shape[-2:] if finish else batch["frames"].shape[2:4]
    return {
        "num_workers": num_workers,
        "stage": f"read + encode/augment on {device.type}" if finish else "read",
        "batch_size": int(b),
        "clip_frames": int(t),
        "frame_size": [int(height), int(width)],
        "batches": timed,
        "seconds": elapsed,
        "clips_per_s": clips / elapsed,
        "frames_per_s": frames / elapsed,
        "ms_per_batch": 1000 * elapsed / timed,
    }


def measure_stages(config: BenchDataConfig, batches: int = 2) -> dict:
    """Where a batch's time goes, in this process: reading and cropping the shards (with the
    random-scale crop: ``raw_batch_at``), then the mirror, colour jitter, encoding and condition
    augmentations on ``config.finish_device`` (``finish_batch``, the GPU's part). Milliseconds per
    frame of each, and the frames per second a loader worker reaches when it only reads."""

    device = torch.device(config.finish_device)
    data = TrainingData(_train_config(config, 0))
    data._train.finish_batch(data.raw_train_batch(0), device)  # memory maps, page cache, kernels
    read = finish = 0.0
    frames = 0
    for index in range(1, batches + 1):
        start = time.perf_counter()
        raw = data.raw_train_batch(index)
        middle = time.perf_counter()
        batch = data._train.finish_batch(raw, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        read, finish = read + middle - start, finish + time.perf_counter() - middle
        frames += batch["frames"].shape[0] * batch["frames"].shape[1]
    return {
        "batches": batches,
        "read_ms_per_frame": 1000 * read / frames,
        "encode_augment_ms_per_frame": 1000 * finish / frames,
        "finish_device": device.type,
        "read_only_frames_per_s": frames / read,
    }


def training_flops_per_clip(config: BenchDataConfig) -> dict:
    """The preset model's FLOPs for one training clip at the dataset's frame size: the forward
    pass counted by ``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs) on the CPU, the
    backward taken as twice the forward (weights' and inputs' gradients)."""

    train_config = _train_config(config, 0)
    data = TrainingData(train_config)
    height, width = tuple(train_config.data.crop) if train_config.data.crop else data.frame_hw
    t = train_config.data.clip_frames
    model = build_model(train_config, data).eval()
    parameters = sum(p.numel() for p in model.parameters())
    x = torch.zeros(1, t, 3, height, width)
    cond = torch.zeros(1, t, train_config.conditions.num_channels, height, width)
    sigma = torch.full((1, t // model.frames_per_step), 0.5)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:  # one real forward pass on the CPU (the meta device is slower here)
        model(x, cond, sigma)
    forward = int(counter.get_total_flops())
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return {
        "model": f"{train_config.model.model_class} {train_config.model.preset}",
        "parameters": parameters,
        "clip_frames": t,
        "frame_size": [height, width],
        "forward_flops_per_clip": forward,
        "training_flops_per_clip": 3 * forward,
        "training_flops_per_frame": 3 * forward / t,
        "forward_flops_by_op": by_op,
    }


def run_benchmark(config: BenchDataConfig) -> dict:
    """Every worker count in turn, the FLOP count, and the host's facts; written to ``out``."""

    rows = [measure_loader(config, workers) for workers in config.workers]
    rows += [measure_loader(config, workers, finish=True) for workers in config.workers]
    report = {
        "dataset": config.dataset,
        "presets": config.presets,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "measured_unix": int(time.time()),
        "loader": rows,
        "stages": measure_stages(config),
    }
    if config.count_flops:
        report["flops"] = training_flops_per_clip(config)
    atomic_write_json(config.out, report)
    return report


def format_report(report: dict) -> str:
    lines = [
        "| workers | stage | batch | clip frames | size | clips/s | frames/s | ms/batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["loader"]:
        h, w = row["frame_size"]
        lines.append(
            f"| {row['num_workers']} | {row['stage']} | {row['batch_size']} | {row['clip_frames']} | {w}x{h} | "
            f"{row['clips_per_s']:.2f} | {row['frames_per_s']:.1f} | {row['ms_per_batch']:.0f} |"
        )
    stages = report["stages"]
    lines.append(
        f"\nper frame, one process: reading + cropping {stages['read_ms_per_frame']:.2f} ms, encoding + "
        f"augmentations on {stages['finish_device']} {stages['encode_augment_ms_per_frame']:.2f} ms "
        f"(reading alone: {stages['read_only_frames_per_s']:.0f} frames/s)"
    )
    flops = report.get("flops")
    if flops:
        lines.append(
            f"\n{flops['model']} ({flops['parameters'] / 1e6:.1f}M parameters) at "
            f"{flops['frame_size'][1]}x{flops['frame_size'][0]}: {flops['forward_flops_per_clip'] / 1e12:.3f} "
            f"TFLOP forward per {flops['clip_frames']}-frame clip; training (x3) "
            f"{flops['training_flops_per_frame'] / 1e9:.1f} GFLOP per frame"
        )
    return "\n".join(lines)

"""A run's curves as one PNG: training loss, learning rate and every validation metric against step.

``plot_run_curves(run_dir)`` reads ``run_dir/logs.jsonl`` (one JSON object per line; records with
``"kind": "train"`` carry ``loss`` and ``lr``, records with ``"kind": "validation"`` carry metric
keys, every record a ``step``) and writes ``run_dir/curves.png`` atomically, one small subplot per
quantity. Unreadable lines (a run killed while writing its last line) and records of other kinds
are skipped; where a resumed run logged a step twice, the later value wins. Uses matplotlib's Agg
canvas without pyplot, so it is safe in a training process without a display.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from src.common.errors import UserError
from src.common.io import atomic_write_bytes

TRAIN_KEYS = ("loss", "lr")
TITLES = {"train/loss": "training loss", "train/lr": "learning rate"}
IGNORED_VALIDATION_KEYS = ("step", "kind")


def read_run_series(logs_path: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """``name -> (steps, values)`` sorted by step: ``train/loss``, ``train/lr``, ``validation/<key>``."""
    series: dict[str, dict[int, float]] = {}
    for line in Path(logs_path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            continue
        kind = record.get("kind")
        if kind == "train":
            keys = [key for key in TRAIN_KEYS if key in record]
        elif kind == "validation":
            keys = [key for key in record if key not in IGNORED_VALIDATION_KEYS]
        else:
            continue
        for key in keys:
            value = record[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            series.setdefault(f"{kind}/{key}", {})[record["step"]] = float(value)
    return {
        name: (sorted(points), [points[step] for step in sorted(points)]) for name, points in series.items()
    }


def plot_run_curves(run_dir: str | Path, *, columns: int = 4) -> Path:
    """Write ``run_dir/curves.png`` from ``run_dir/logs.jsonl`` and return its path."""
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    logs_path = run_dir / "logs.jsonl"
    if not logs_path.is_file():
        raise UserError(f"no logs.jsonl in {run_dir}", "Pass a run folder (runs/<name>) that has trained.")
    series = read_run_series(logs_path)
    order = [f"train/{key}" for key in TRAIN_KEYS] + sorted(n for n in series if n.startswith("validation/"))
    names = [name for name in order if name in series]
    columns = max(1, min(columns, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure = Figure(figsize=(3.2 * columns, 2.4 * rows), dpi=100, layout="constrained")
    if not names:
        figure.text(0.5, 0.5, "no training or validation records yet", ha="center", va="center")
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        steps, values = series[name]
        validation = name.startswith("validation/")
        axes.plot(steps, values, marker="o" if validation else None, markersize=3, linewidth=1)
        if name == "train/loss" and min(values) > 0:
            axes.set_yscale("log")
        axes.set_title(TITLES.get(name, name.split("/", 1)[1]), fontsize=9)
        axes.set_xlabel("step", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    figure.suptitle(run_dir.name, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    out = run_dir / "curves.png"
    atomic_write_bytes(out, buffer.getvalue())
    return out

"""Write a renderer package from a training run's newest checkpoint (EMA weights).

uv run python -m src.scripts.export_package runs/cpu_tiny --out game/models/default
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from src.common.config import load_config, parse_config
from src.common.errors import UserError, script_main


@dataclasses.dataclass
class ExportConfig:
    run: str = ""
    """the run folder (runs/NAME) to export"""
    out: str = ""
    """where to write the package (default: RUN/package)"""


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(ExportConfig, argv, prog="export_package", description=__doc__, positional=["run"])
    run = Path(config.run)
    if not (run / "run_config.yaml").is_file():
        raise UserError(f"{run} is not a training run (no run_config.yaml)", "Pass a folder under runs/.")
    from src.train import checkpoint as ckpt
    from src.train.config import TrainConfig
    from src.train.data import TrainingData
    from src.train.model_io import build_model, load_weights_from
    from src.train.package import export_package

    train_config = load_config(TrainConfig, run / "run_config.yaml")
    latest = ckpt.latest_checkpoint(run)
    if latest is None:
        raise UserError(
            f"{run} has no complete checkpoint yet", "Train it for at least checkpoint_every_steps steps."
        )
    step, _ = latest
    data = TrainingData(train_config, process_index=0, num_processes=1)
    model = build_model(train_config, data)
    load_weights_from(model, run)
    metrics = _latest_validation(run)
    out = Path(config.out) if config.out else run / "package"
    export_package(model.eval(), data, train_config, out, step=step, metrics=metrics, run_dir=run)
    print(f"wrote {out} (step {step})")


def _latest_validation(run: Path) -> dict:
    import json

    metrics: dict = {}
    log = run / "logs.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "validation":
                metrics = {k: v for k, v in record.items() if k not in ("kind",)}
    return metrics


if __name__ == "__main__":
    main()

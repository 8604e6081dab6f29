"""Write a renderer package from a training run's newest checkpoint (EMA weights).

uv run python -m src.scripts.export_package runs/cpu_tiny --out game/models/default
"""

from __future__ import annotations

import dataclasses

from src.common.config import parse_config
from src.common.errors import script_main


@dataclasses.dataclass
class ExportConfig:
    """``export_package``: which run to export, and where to."""

    run: str = ""
    """the run folder (runs/NAME) to export"""
    out: str = ""
    """where to write the package (default: RUN/package)"""


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(ExportConfig, argv, prog="export_package", description=__doc__, positional=["run"])
    # imported after parsing: the package writer pulls torch and diffusers (seconds), which --help
    # and a mistyped flag should not wait for
    from src.train.package import export_run

    out, step = export_run(config.run, config.out or None)
    print(f"wrote {out} (step {step})")


if __name__ == "__main__":
    main()

"""Write a renderer package from a training run's newest checkpoint (EMA weights), with the ONNX
export of its step graph at the package's size (``onnx/<W>x<H>/``: for ``--backend onnxruntime``
or any ONNX tool; ncnn's is made the first time play asks for it).

uv run python -m src.scripts.export_package runs/cpu_tiny --out game/models/default
"""

from __future__ import annotations

import dataclasses

from src.common.config import parse_config
from src.common.errors import script_main


@dataclasses.dataclass
class ExportConfig:
    """``export_package``: which run to export, and where to."""

    RANGES = {"albedo_detail": "[0, 1]"}  # checked when parsed (src/common/ranges.py)

    run: str = ""
    """the run folder (runs/NAME) to export"""
    out: str = ""
    """where to write the package (default: RUN/package)"""
    onnx: bool = True
    """also write the ONNX export of the model's step at the package's size (onnx/WxH/)"""
    albedo_detail: float | None = None
    """ship this sampling.albedo_detail instead of the run's (a student that upscales, or a DiT
    with a half-size smooth decoder: how much of the full-size albedo's detail to add to its
    frames; a render-time setting, the weights are the same)"""


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(ExportConfig, argv, prog="export_package", description=__doc__, positional=["run"])
    # imported after parsing: the package writer pulls torch and diffusers (seconds), which --help
    # and a mistyped flag should not wait for
    from src.train.package import export_run

    out, step = export_run(config.run, config.out or None, albedo_detail=config.albedo_detail)
    print(f"wrote {out} (step {step})")
    if config.onnx:
        from src.runtime.onnx_backend import ensure_onnx_export
        from src.runtime.package import load_package

        package = load_package(out)
        onnx_path, _ = ensure_onnx_export(package, package.height, package.width)
        print(f"wrote {onnx_path}")


if __name__ == "__main__":
    main()

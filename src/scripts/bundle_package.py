"""Put several renderer packages (or runs) into one bundle: play's default and the others by name.

    uv run python -m src.scripts.bundle_package --renderers student=runs/student_cpu dit=runs/distill_cpu \
        --default student --play_resolution 224x224 --out game/models/default \
        --evaluations "student:road=runs/evaluate/student-road/metrics.json"

The bundle's README lists every renderer with its size, its own model card and the ``evaluate``
numbers named by ``--evaluations`` (``NAME:LABEL=metrics.json``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from src.common.config import parse_config, parse_resolution
from src.common.errors import UserError, script_main
from src.common.outputs import check_plain_name


@dataclasses.dataclass
class BundleConfig:
    """``bundle_package``: which packages, which plays by default, where to."""

    renderers: list[str] = dataclasses.field(default_factory=list)
    """NAME=PACKAGE_OR_RUN, one per renderer (the name is what --renderer takes in play)"""
    default: str = ""
    """the renderer play starts on (default: the first)"""
    play_resolution: str | None = None
    """WIDTHxHEIGHT play renders the bundle at (default: the default renderer's own)"""
    evaluations: list[str] = dataclasses.field(default_factory=list)
    """NAME:LABEL=metrics.json, evaluate results shown in the model card"""
    notes: str | None = None
    """a markdown file appended to the bundle's model card (e.g. how the renderers were made)"""
    out: str = ""
    """the bundle folder to write (replaced atomically)"""


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UserError(
                f"invalid {what} {item!r}",
                f"Write it as {'NAME' if what == '--renderers' else 'NAME:LABEL'}=PATH.",
            )
        pairs.append((key, value))
    return pairs


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(BundleConfig, argv, prog="bundle_package", description=__doc__)
    # imported after parsing: the package writer pulls torch and diffusers (seconds), which --help
    # and a mistyped flag should not wait for
    from src.train.bundle import bundle_packages

    pairs = _pairs(config.renderers, "--renderers")
    names = [check_plain_name(name, "--renderers name") for name, _ in pairs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserError(
            f"--renderers names {', '.join(duplicates)} more than once", "Give each renderer its own name."
        )
    members = dict(pairs)
    if not members or not config.out:
        raise UserError("give --renderers NAME=PACKAGE ... and --out DIR")
    default = config.default or next(iter(members))
    if default not in members:
        raise UserError(f"--default {default} is not one of the renderers ({', '.join(members)})")
    if config.play_resolution:
        parse_resolution(config.play_resolution)
    evaluations: dict[str, dict[str, str]] = {}
    for key, path in _pairs(config.evaluations, "--evaluations"):
        name, _, label = key.partition(":")
        if name not in members:
            raise UserError(
                f"--evaluations names {name!r}, which is not one of the renderers ({', '.join(members)})"
            )
        evaluations.setdefault(name, {})[label or "evaluate"] = path
    notes = ""
    if config.notes:
        if not Path(config.notes).is_file():
            raise UserError(f"--notes {config.notes} is not a file", "Give a markdown file.")
        notes = "\n" + Path(config.notes).read_text()
    out = bundle_packages(
        members,
        config.out,
        default=default,
        play_resolution=config.play_resolution,
        evaluations=evaluations,
        readme_extra=notes,
    )
    print(f"wrote {out}: {', '.join(members)} (default {default})")


if __name__ == "__main__":
    main()

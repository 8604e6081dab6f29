"""Which folders the package and bundle writers may replace (``src/common/outputs.py``'s rule,
with what a package and a bundle are made of): a package folder of this writer's, never a
renderer inside a bundle, never a package of another model class."""

from __future__ import annotations

import json
from pathlib import Path

from src.common.errors import UserError
from src.common.outputs import claim_output_folder

REQUIRED_PACKAGE_FILES = ("config.json", "model.safetensors", "conditions.json")
BUNDLE_FILE = "renderers.json"
PACKAGE_KIND = "renderer package"
BUNDLE_KIND = "renderer bundle"
NCNN_FOLDER = "ncnn"  # play's exports inside a package (made on demand; not written by the package writer)
EXPORT_FOLDERS = (NCNN_FOLDER, "onnx")  # the runtimes' exports, made on demand inside a package


def is_written_package(folder: Path) -> bool:
    """Whether ``folder`` is a package written by ``write_package`` before output markers existed:
    its three required files, and nothing but the names the writer (and play's ncnn export) makes."""
    names = {child.name for child in folder.iterdir()}
    ours = {*REQUIRED_PACKAGE_FILES, "README.md", "curves.png", *EXPORT_FOLDERS}
    return set(REQUIRED_PACKAGE_FILES) <= names and all(
        name in ours or (name.startswith("samples_") and name.endswith(".png")) for name in names
    )


def is_written_bundle(folder: Path) -> bool:
    """Whether ``folder`` is a bundle written by ``write_bundle`` before output markers existed:
    its renderers.json and README.md, and one folder per renderer it lists."""
    try:
        members = set(json.loads((folder / BUNDLE_FILE).read_text())["renderers"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return {child.name for child in folder.iterdir()} <= {BUNDLE_FILE, "README.md", *members} and all(
        (folder / member).is_dir() and is_written_package(folder / member) for member in members
    )


def claim_package_folder(directory: str | Path, *, inputs=(), model_class: str | None = None) -> Path:
    """Refuse (one line) a ``--out`` that ``write_package`` may not replace; see ``claim_output_folder``.

    Also refused: a renderer inside a bundle (the bundle is rewritten whole, by ``bundle_package``),
    and, given ``model_class``, a package of another model class (a baseline never replaces a
    trained renderer)."""
    directory = Path(directory)
    if (directory.parent / BUNDLE_FILE).is_file() and is_written_bundle(directory.parent):
        members = set(json.loads((directory.parent / BUNDLE_FILE).read_text())["renderers"].values())
        if directory.name in members:
            raise UserError(
                f"--out {directory} is a renderer of the bundle {directory.parent}, so it will not be replaced on its own",
                "Write the package to a new folder, then rebuild the bundle with bundle_package.",
            )
    claim_output_folder(
        directory, kind=PACKAGE_KIND, inputs=inputs, recognise=is_written_package, also_ours=EXPORT_FOLDERS
    )
    if model_class is not None and (directory / "config.json").is_file():
        try:
            existing = json.loads((directory / "config.json").read_text()).get("_class_name")
        except (OSError, ValueError, AttributeError):
            existing = None
        if existing is not None and existing != model_class:
            raise UserError(
                f"--out {directory} holds a {existing} package, not a {model_class}, so it will not be replaced",
                "Choose a new folder for --out.",
            )
    return directory


def claim_bundle_folder(directory: str | Path, *, inputs=()) -> Path:
    """Refuse (one line) a ``--out`` that ``write_bundle`` may not replace; see ``claim_output_folder``."""
    return claim_output_folder(directory, kind=BUNDLE_KIND, inputs=inputs, recognise=is_written_bundle)

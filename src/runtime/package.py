"""The renderer package: a directory that fully describes a trained renderer.

    config.json        model class (``_class_name``, any class in ``src/net/models.py``) and its
                       hyper-parameters (diffusers ConfigMixin format)
    model.safetensors  EMA weights (safetensors only: nothing here is ever unpickled)
    conditions.json    the condition spec (channels, normals source), normalisation statistics,
                       the model's resolution and fps, and its default sampling settings
    README.md          the model card (data, steps, validation metrics, the training command)
    ncnn/              optional exports, one folder per input shape, made on demand

Training writes it (``write_package``); play, export, evaluation and publishing read it
(``load_package``).

A *bundle* holds several renderers (e.g. the real-time student and the DiT it was distilled
from): ``renderers.json`` names them, each a complete package in its own sub-folder, says
which one plays by default and at which resolution play renders it::

    renderers.json     {"format_version": 1, "default": "student", "play_resolution": "224x224",
                        "renderers": {"student": "student", "dit": "dit"}}
    README.md          the bundle's model card
    student/ dit/      packages as above

``load_package(bundle, renderer="dit")`` loads one member (``None``: the default); every reader
takes a bundle wherever it takes a package (``write_bundle`` writes one).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from src.common.errors import UserError
from src.common.io import atomic_write_json
from src.common.outputs import atomic_directory, check_plain_name
from src.conditions.spec import ConditionSpec
from src.runtime.defaults import DEFAULT_RENDERER, SamplingDefaults
from src.runtime.package_folders import (
    BUNDLE_FILE,
    BUNDLE_KIND,
    EXPORT_FOLDERS,
    PACKAGE_KIND,
    REQUIRED_PACKAGE_FILES,
    claim_package_folder,
    is_written_bundle,
    is_written_package,
)

if TYPE_CHECKING:
    import torch
    from diffusers.models.modeling_utils import ModelMixin

    from src.conditions.encode import ConditionStats

PACKAGE_FORMAT_VERSION = 1
BUNDLE_FORMAT_VERSION = 1
# config keys renamed since packages were first written: old name -> new name
_RENAMED_CONFIG_KEYS = {"frames_per_token": "frames_per_framelet"}


def default_cache_dir() -> Path:
    """Where downloaded packages and exports of read-only packages go."""
    return Path(os.environ.get("VELODREAM_CACHE", Path.home() / ".cache" / "velodream"))


def check_package(directory: str | Path, *, source: str | None = None) -> Path:
    """Return ``directory`` if it is a complete renderer package, else raise a UserError."""
    directory = Path(directory)
    label = source or str(directory)
    if not directory.is_dir():
        raise UserError(
            f"renderer package not found: {label}",
            "Give a package directory (with config.json, model.safetensors, conditions.json), "
            "hf://owner/repo, or an https:// archive URL with #sha256=...",
        )
    if (directory / BUNDLE_FILE).is_file():
        for member in read_bundle(directory)["renderers"].values():
            check_package(directory / member, source=f"{label}/{member}")
        return directory
    missing = [name for name in REQUIRED_PACKAGE_FILES if not (directory / name).is_file()]
    if missing:
        raise UserError(
            f"renderer package {label} is missing {', '.join(missing)}",
            "Re-export it with `python -m src.scripts.export_package RUN --out DIR` or download it again.",
        )
    return directory


def read_bundle(directory: str | Path) -> dict:
    """The checked ``renderers.json`` of a bundle: ``default``, ``renderers`` (name -> sub-folder)
    and ``play_resolution`` (or None)."""
    directory = Path(directory)
    meta = _read_json(directory / BUNDLE_FILE, directory)
    renderers = meta.get("renderers")
    if meta.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise UserError(
            f"renderer bundle {directory} has format {meta.get('format_version')}, this version reads "
            f"{BUNDLE_FORMAT_VERSION}",
            "Update Velodream or write the bundle again.",
        )
    if not isinstance(renderers, dict) or not renderers or meta.get("default") not in renderers:
        raise UserError(
            f"renderer bundle {directory}: {BUNDLE_FILE} needs a non-empty 'renderers' object and a 'default' "
            "that names one of them",
            "Write the bundle again (src/runtime/package.py: write_bundle).",
        )
    for name, member in renderers.items():
        if (
            not isinstance(member, str)
            or member in ("", ".", "..")
            or Path(member).name != member
            or name == DEFAULT_RENDERER
        ):
            raise UserError(
                f"renderer bundle {directory}: renderer {name!r} -> {member!r} is not a sub-folder of the bundle",
                "Write the bundle again.",
            )
    return {
        "default": meta["default"],
        "renderers": dict(renderers),
        "play_resolution": meta.get("play_resolution"),
    }


def _default_first(bundle: dict) -> list[str]:
    return [bundle["default"], *[name for name in bundle["renderers"] if name != bundle["default"]]]


def renderer_names(directory: str | Path) -> list[str]:
    """The renderers a package or bundle holds, its default first (a plain package: ``[]``)."""
    directory = Path(directory)
    return _default_first(read_bundle(directory)) if (directory / BUNDLE_FILE).is_file() else []


def resolve_renderer(
    directory: str | Path, renderer: str | None = None
) -> tuple[Path, str | None, dict | None]:
    """(the package folder of ``renderer`` in ``directory``, its name in the bundle or None, the
    bundle's ``read_bundle`` or None).

    ``renderer`` None or ``"default"`` is the default; a plain package also answers to its class
    name. Anything else is a UserError listing what the package holds."""
    directory = check_package(directory)
    if (directory / BUNDLE_FILE).is_file():
        bundle = read_bundle(directory)
        name = bundle["default"] if renderer in (None, DEFAULT_RENDERER) else renderer
        if name not in bundle["renderers"]:
            raise UserError(
                f"the renderer bundle {directory} holds no renderer called {renderer!r}",
                "Choose one of: " + ", ".join(_default_first(bundle)) + ".",
            )
        return directory / bundle["renderers"][name], name, bundle
    if renderer not in (None, DEFAULT_RENDERER):
        own = _read_json(directory / "config.json", directory).get("_class_name")
        if renderer != own:
            raise UserError(
                f"the package {directory} holds no renderer called {renderer!r}: it has {own} (its default)",
                f"Use --renderer {DEFAULT_RENDERER} or --renderer {own}.",
            )
    return directory, None, None


def write_bundle(
    directory: str | Path,
    members: dict[str, str | Path],
    *,
    default: str,
    readme: str,
    play_resolution: str | None = None,
) -> Path:
    """Copy the packages ``members`` (name -> package folder) into one bundle, atomically."""
    import shutil

    if default not in members:
        raise ValueError(f"the default renderer {default!r} is not one of {list(members)}")
    for name in members:
        check_plain_name(name, "the renderer name")
    directory = Path(directory)
    with atomic_directory(
        directory, kind=BUNDLE_KIND, inputs=list(members.values()), recognise=is_written_bundle
    ) as staging:
        for name, source in members.items():
            check_package(source)
            shutil.copytree(source, staging / name, ignore=shutil.ignore_patterns(*EXPORT_FOLDERS, ".*"))
        atomic_write_json(
            staging / BUNDLE_FILE,
            {
                "format_version": BUNDLE_FORMAT_VERSION,
                "default": default,
                "play_resolution": play_resolution,
                "renderers": {name: name for name in members},
            },
        )
        (staging / "README.md").write_text(readme)
    return directory


@dataclasses.dataclass
class RendererPackage:
    """A loaded package: the model (eval mode, CPU, fp32) and everything ``encode`` needs."""

    path: Path
    model: ModelMixin  # any renderer model class (src/net/models.py)
    spec: ConditionSpec
    stats: ConditionStats
    width: int
    height: int
    fps: float
    sampling: SamplingDefaults
    card: dict
    name: str | None = None  # its name in a bundle (None: a plain package)
    bundle: Path | None = None  # the bundle it was loaded from
    play_resolution: str | None = None  # WIDTHxHEIGHT the bundle's renderers play at (None: native)


def write_package(
    directory: str | Path,
    *,
    model: ModelMixin,
    spec: ConditionSpec,
    stats: ConditionStats,
    width: int,
    height: int,
    fps: float,
    sampling: SamplingDefaults,
    readme: str,
    card: dict,
    extra_files: dict[str, Path] | None = None,
    inputs: tuple[str | Path, ...] | list = (),
) -> Path:
    """Write a package atomically (a half-written package never replaces a good one).

    ``extra_files`` maps names inside the package to files copied in (e.g. sample images);
    ``inputs`` are folders the package is made from, which ``directory`` must not contain. An
    existing ``directory`` is replaced only if it is a package this writer made
    (``claim_package_folder``).
    """
    import shutil

    import torch  # torch and safetensors load when a package is written or read, not at import
    from safetensors.torch import save

    directory = Path(directory)
    state = {
        name: tensor.detach().to("cpu", torch.float32).contiguous()
        for name, tensor in model.state_dict().items()
    }
    claim_package_folder(directory, inputs=inputs, model_class=type(model).__name__)
    with atomic_directory(
        directory,
        kind=PACKAGE_KIND,
        inputs=[*inputs, *(extra_files or {}).values()],
        recognise=is_written_package,
        also_ours=EXPORT_FOLDERS,
    ) as staging:
        model.save_config(staging)
        (staging / "model.safetensors").write_bytes(
            save(state, metadata={"format": "pt"})
        )  # bytes: a full disk is an OSError
        conditions = {
            "format_version": PACKAGE_FORMAT_VERSION,
            **spec.to_dict(),
            "stats": stats.to_dict(),
            "width": width,
            "height": height,
            "fps": fps,
            "sampling": dataclasses.asdict(sampling),
            "card": card,
        }
        atomic_write_json(staging / "conditions.json", conditions)
        (staging / "README.md").write_text(readme)
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, staging / name)
    return directory


def _read_json(path: Path, directory: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise UserError(
            f"renderer package {directory} has an unreadable {path.name} ({type(error).__name__}: {error})",
            "Download or export the package again.",
        ) from None
    if not isinstance(value, dict):
        raise UserError(f"renderer package {directory}: {path.name} is not a JSON object", "Export it again.")
    return value


def _load_weights(model: ModelMixin, directory: Path) -> None:
    """``model.safetensors`` into ``model``: a one-line UserError for an unreadable file, NaN or
    infinite weights, or weights of another model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(directory / "model.safetensors")
    except (SafetensorError, OSError) as error:
        raise UserError(
            f"renderer package {directory}: model.safetensors is not a readable safetensors file ({error})",
            "Download or export the package again.",
        ) from None
    broken = sorted(
        name for name, tensor in state.items() if tensor.is_floating_point() and not tensor.isfinite().all()
    )
    if broken:
        raise UserError(
            f"renderer package {directory}: model.safetensors holds NaN or infinite weights "
            f"({', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''}); it would render black frames",
            "The run that wrote it diverged: package an earlier checkpoint, or train again with a lower learning rate.",
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1:2] or [str(error)]
        raise UserError(
            f"renderer package {directory}: the weights do not match config.json ({first[0].strip()})",
            "The package's files come from different models; export it again.",
        ) from None


def load_package(
    directory: str | Path, *, renderer: str | None = None, device: str | torch.device = "cpu"
) -> RendererPackage:
    """Read a package written by ``write_package`` (or the member ``renderer`` of a bundle, by
    default its default): any registered model class, its EMA weights, the condition spec and
    statistics. Every way a package can be broken is a one-line UserError."""
    # The model classes import torch, einops and diffusers (seconds): they load when a package is
    # read, so that commands which only parse, check or download start at once.
    from src.conditions.encode import ConditionStats
    from src.net.models import renderer_model_class

    bundle_dir = Path(directory)
    directory, name, bundle = resolve_renderer(directory, renderer)
    meta = _read_json(directory / "conditions.json", directory)
    config = _read_json(directory / "config.json", directory)
    if meta.get("format_version") != PACKAGE_FORMAT_VERSION:
        raise UserError(
            f"renderer package {directory} has format {meta.get('format_version')}, this version reads "
            f"{PACKAGE_FORMAT_VERSION}",
            "Update Velodream or re-export the package.",
        )
    model_class = renderer_model_class(config.get("_class_name"), source=f"renderer package {directory}")
    config = {_RENAMED_CONFIG_KEYS.get(key, key): value for key, value in config.items()}
    try:
        model = model_class.from_config(config)
        spec = ConditionSpec.from_dict(meta)
        stats = ConditionStats.from_dict(meta["stats"])
        width, height, fps = int(meta["width"]), int(meta["height"]), float(meta["fps"])
        sampling = SamplingDefaults(**meta.get("sampling", {}))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(
            f"renderer package {directory} has an invalid config ({type(error).__name__}: {error})",
            "Export the package again.",
        ) from None
    _load_weights(model, directory)
    model.to(device).eval()
    return RendererPackage(
        path=directory,
        model=model,
        spec=spec,
        stats=stats,
        width=width,
        height=height,
        fps=fps,
        sampling=sampling,
        card=meta.get("card", {}),
        name=name,
        bundle=bundle_dir if bundle is not None else None,
        play_resolution=bundle["play_resolution"] if bundle is not None else None,
    )

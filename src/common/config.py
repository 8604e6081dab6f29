"""One configuration mechanism for every script.

Each script has a typed dataclass (fields may themselves be dataclasses, one per
subsystem). The command line is derived from it with jsonargparse:

    --conf FILE              a YAML file with no wrapper key; repeat to layer files in order
    --conf.section.key VALUE a dotted override, applied after the files before it
    --section.key VALUE      the same override, shorter (every field is also a top-level flag)
    --print_config           print the fully resolved config as YAML and exit 0
    --help                   every field with its type, default and description (the string
                             literal under the field in its dataclass)

Unknown keys fail with the key and the file (or the command line) they came
from; wrong types name the expected type. Every failure is a ``UserError``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from src.common.errors import UserError
from src.common.frame_size import FrameSize
from src.common.io import check_writable_file
from src.common.ranges import check_ranges

T = TypeVar("T")

_RESERVED_FLAGS = {"conf", "print_config", "help", "h"}


def _dataclass_field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _as_dataclass(type_hint: Any) -> type | None:
    """The dataclass inside ``type_hint`` (also through ``Optional``), else None."""
    if dataclasses.is_dataclass(type_hint) and isinstance(type_hint, type):
        return type_hint
    if typing.get_origin(type_hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(type_hint):
            if dataclasses.is_dataclass(arg) and isinstance(arg, type):
                return arg
    return None


def check_keys(config_cls: type, values: Any, *, source: str, prefix: str = "") -> None:
    """Fail on any key of ``values`` that ``config_cls`` has no field for, naming ``source``."""
    if not isinstance(values, dict):
        where = f"'{prefix.rstrip('.')}'" if prefix else "the top level"
        raise UserError(
            f"{source}: expected a mapping of keys to values at {where}, got {type(values).__name__}",
            "YAML files in conf/ hold the config's fields directly, with no wrapper key.",
        )
    field_types = _dataclass_field_types(config_cls)
    for key, value in values.items():
        if key not in field_types:
            known = ", ".join(sorted(field_types))
            raise UserError(
                f"unknown config key '{prefix}{key}' in {source}",
                f"Known keys{' under ' + prefix.rstrip('.') if prefix else ''}: {known}.",
            )
        nested = _as_dataclass(field_types[key])
        if nested is not None and value is not None:
            check_keys(nested, value, source=source, prefix=f"{prefix}{key}.")


def _field_paths(config_cls: type, prefix: str = "") -> dict[str, Any]:
    """Every dotted field path of the config and its type hint."""
    paths: dict[str, Any] = {}
    for name, hint in _dataclass_field_types(config_cls).items():
        paths[prefix + name] = hint
        nested = _as_dataclass(hint)
        if nested is not None:
            paths.update(_field_paths(nested, prefix + name + "."))
    return paths


_BOOL_WORDS = {"true", "false", "yes", "no", "1", "0", "on", "off"}


def _list_item_type(type_hint: Any) -> Any | None:
    """The item type of a ``list[X]`` field (also through ``Optional``), else None."""
    if typing.get_origin(type_hint) is list:
        return (typing.get_args(type_hint) or (str,))[0]
    if typing.get_origin(type_hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(type_hint):
            if typing.get_origin(arg) is list:
                return (typing.get_args(arg) or (str,))[0]
    return None


def _list_value(values: list[str], item_type: Any) -> str:
    """Shell words -> the list literal the parser reads (one word that is already a list stays)."""
    if len(values) == 1 and values[0].lstrip().startswith("["):
        return values[0]
    if item_type is str:
        return json.dumps(values)  # quoted: a path like "no" or "1" stays a string
    return "[" + ", ".join(values) + "]"


def _rewrite_shortcuts(argv: Sequence[str], config_cls: type, positional: Sequence[str] = ()) -> list[str]:
    """Turn ``--key v`` / ``--a.b=v`` / ``--a-b v`` into ``--conf.key v`` for fields of the config.

    Leading bare arguments fill the fields named in ``positional``, in order. A list field takes
    the words that follow it, shell style (``--videos a.mp4 b.mp4``), or one list literal.
    """
    paths = _field_paths(config_cls)
    out: list[str] = []
    positional = list(positional)
    expects_value = False
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if not arg.startswith("--") and not expects_value and positional:
            out += [f"--conf.{positional.pop(0)}", arg]
            continue
        expects_value = False
        match = re.fullmatch(r"--([A-Za-z_][\w.-]*)(=.*)?", arg)
        if match and match.group(1) not in _RESERVED_FLAGS:
            name = match.group(1).replace("-", "_").removeprefix("conf.")
            if name in paths:
                arg = f"--conf.{name}{match.group(2) or ''}"
                expects_value = match.group(2) is None
                following = argv[index] if index < len(argv) else None
                if (
                    expects_value
                    and paths[name] is bool
                    and (following is None or following.lower() not in _BOOL_WORDS)
                ):
                    out += [arg, "true"]  # a bare boolean flag means true
                    expects_value = False
                    continue
                item_type = _list_item_type(paths[name])
                if expects_value and item_type is not None:
                    values = []
                    while index < len(argv) and not argv[index].startswith("--"):
                        values.append(argv[index])
                        index += 1
                    out += [arg, _list_value(values, item_type)]
                    expects_value = False
                    continue
        elif arg == "--conf":
            expects_value = True
        out.append(arg)
    return out


PRESET_DIR = Path(__file__).resolve().parents[2] / "conf"
"""The project's presets: ``--conf base.yaml`` (or ``--conf base``) means ``conf/base.yaml``."""


def resolve_conf_path(path: str) -> str:
    """A ``--conf`` file as given when it exists, else the preset of that name in ``conf/``.

    A bare name (``base``, ``base.yaml``, ``conf/base.yaml``) that is neither is a UserError
    that lists the presets there are.
    """
    if Path(path).is_file():
        return path
    name = Path(path).name
    if Path(path).parent in (Path("."), Path("conf")):
        for candidate in (PRESET_DIR / name, PRESET_DIR / f"{name}.yaml"):
            if candidate.is_file():
                return str(candidate)
    presets = ", ".join(sorted(file.stem for file in PRESET_DIR.glob("*.yaml")))
    raise UserError(
        f"config file not found: {path}",
        f"Give a YAML file's path or a preset of conf/: {presets}.",
    )


def _resolve_conf_args(argv: list[str]) -> list[str]:
    """Every ``--conf FILE`` / ``--conf=FILE`` of ``argv`` with FILE resolved by resolve_conf_path."""
    out = list(argv)
    for index, arg in enumerate(out):
        if arg == "--conf" and index + 1 < len(out):
            out[index + 1] = resolve_conf_path(out[index + 1])
        elif arg.startswith("--conf="):
            out[index] = "--conf=" + resolve_conf_path(arg.split("=", 1)[1])
    return out


def _load_yaml_file(path: str) -> Any:
    file = Path(resolve_conf_path(path))
    try:
        return yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}".replace("\n", " ")) from None


def _build_parser(config_cls: type, prog: str | None, description: str | None):
    from jsonargparse import ArgumentParser, set_parsing_settings

    # --help describes each field with the string literal under it (its attribute docstring)
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(prog=prog, description=description, exit_on_error=False)
    parser.add_class_arguments(config_cls, "conf", fail_untyped=True)
    parser.add_argument(
        "--print_config",
        action="store_const",
        const=True,
        default=False,
        help="print the resolved config and exit",
    )
    return parser


def _clean_message(error: Exception) -> str:
    text = str(error).strip()
    text = re.sub(r"\s+", " ", text)
    text = text.replace("<class '", "").replace("'>", "")
    return text


Layer = Mapping[str, Any] | str | Path
"""A config layer: a dict of field values, or a YAML file of them (no wrapper key)."""


def parse_config(
    config_cls: type[T],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
    positional: Sequence[str] = (),
    base_layers: Sequence[Layer | Callable[[T], Layer]] = (),
) -> T:
    """Parse ``argv`` into an instance of ``config_cls`` (see the module docstring).

    ``positional`` names fields that leading bare arguments fill, in order
    (``download_checkpoint SOURCE``).

    ``base_layers`` are applied first, in order, before the ``--conf`` files and overrides of
    ``argv``. A layer that depends on what the user asked for is a callable: it gets the config
    parsed without the callable layers and returns the layer (``play_game`` reads the level file
    named by ``--level`` under ``world``).

    With ``--print_config`` the resolved config is printed as YAML and the process exits 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = _rewrite_shortcuts(argv, config_cls, positional)
    print_config = "--print_config" in argv
    argv = _resolve_conf_args([arg for arg in argv if arg != "--print_config"])
    files = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--conf"]
    files += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--conf=")]
    for path in files:
        check_keys(config_cls, _load_yaml_file(path), source=path)

    fixed = [layer for layer in base_layers if not callable(layer)]
    config = _parse(config_cls, _layer_args(config_cls, fixed) + argv, files, prog, description)
    if len(fixed) < len(base_layers):
        layers = [layer(config) if callable(layer) else layer for layer in base_layers]
        config = _parse(config_cls, _layer_args(config_cls, layers) + argv, files, prog, description)
    check_ranges(config)
    if print_config:
        sys.stdout.write(to_yaml(config))
        sys.stdout.flush()
        sys.exit(0)
    _check_output_files(config)
    return config


OUTPUT_FILE_FIELDS = ("json_out",)  # file fields every command writes at its end: checked at its start


def _check_output_files(config: Any) -> None:
    """A ``json_out`` that cannot be written is refused before the command's work, not after it."""
    for name in OUTPUT_FILE_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, str) and value:
            check_writable_file(value, what=f"--{name}")


def _layer_args(config_cls: type, layers: Sequence[Layer]) -> list[str]:
    """``--conf`` arguments for base layers (dicts go in as JSON text, which the parser reads)."""
    args: list[str] = []
    for layer in layers:
        if isinstance(layer, Mapping):
            check_keys(config_cls, dict(layer), source="a base layer")
            args += ["--conf", json.dumps(to_dict(dict(layer)))]
        else:
            check_keys(config_cls, _load_yaml_file(str(layer)), source=str(layer))
            args += ["--conf", str(layer)]
    return args


def _parse(
    config_cls: type[T], argv: list[str], files: list[str], prog: str | None, description: str | None
) -> T:
    parser = _build_parser(config_cls, prog, description)
    try:
        namespace = parser.parse_args(argv)
    except SystemExit:
        raise  # --help
    except Exception as error:
        message = _clean_message(error)
        source = "the command line"
        for path in files:  # find the file whose values are at fault
            try:
                _build_parser(config_cls, prog, description).parse_args(["--conf", path])
            except Exception:
                source = path
                break
        unknown = re.search(r"unrecognized arguments: (\S+)", message)
        if unknown:
            raise UserError(
                f"unknown option '{unknown.group(1)}' on the command line",
                "Run with --help to list the options, or --print_config to see every key.",
            ) from None
        raise UserError(f"invalid config value in {source}: {message}") from None
    return build_from_namespace(parser, namespace)


def build_from_namespace(parser, namespace) -> Any:
    try:
        return parser.instantiate(namespace).conf
    except UserError:
        raise
    except Exception as error:
        cause = error.__cause__ or error.__context__
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(f"invalid config: {_clean_message(error)}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def to_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=None)


def load_config(config_cls: type[T], *paths: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load layered YAML files (and ``--conf.key value`` overrides) without touching sys.argv."""
    argv: list[str] = []
    for path in paths:
        argv += ["--conf", str(path)]
    return parse_config(config_cls, argv + list(overrides))


def parse_resolution(text: str, *, what: str = "resolution") -> tuple[int, int]:
    """'320x240' -> (320, 240) as a plain tuple; anything else is a UserError (see FrameSize.parse)."""
    return tuple(FrameSize.parse(text, what=what))

"""One configuration mechanism for every script.

Each script has a typed dataclass (fields may themselves be dataclasses, one per
subsystem). The command line is derived from it with jsonargparse:

    --conf FILE              a YAML file with no wrapper key; repeat to layer files in order
    --conf.section.key VALUE a dotted override, applied after the files before it
    --section.key VALUE      the same override, shorter (every field is also a top-level flag)
    --print_config           print the fully resolved config as YAML and exit 0

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from src.common.errors import UserError

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


def _rewrite_shortcuts(argv: Sequence[str], config_cls: type, positional: Sequence[str] = ()) -> list[str]:
    """Turn ``--key v`` / ``--a.b=v`` / ``--a-b v`` into ``--conf.key v`` for fields of the config.

    Leading bare arguments fill the fields named in ``positional``, in order.
    """
    paths = _field_paths(config_cls)
    out: list[str] = []
    positional = list(positional)
    expects_value = False
    for index, arg in enumerate(argv):
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
                following = argv[index + 1] if index + 1 < len(argv) else None
                if (
                    expects_value
                    and paths[name] is bool
                    and (following is None or following.lower() not in _BOOL_WORDS)
                ):
                    out += [arg, "true"]  # a bare boolean flag means true
                    expects_value = False
                    continue
        elif arg == "--conf":
            expects_value = True
        out.append(arg)
    return out


def _load_yaml_file(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise UserError(f"config file not found: {path}", "Check the path given to --conf.")
    try:
        return yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}".replace("\n", " ")) from None


def _build_parser(config_cls: type, prog: str | None, description: str | None):
    from jsonargparse import ArgumentParser, set_parsing_settings

    # the docstring under each dataclass field is its --help text
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


def parse_config(
    config_cls: type[T],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
    positional: Sequence[str] = (),
) -> T:
    """Parse ``argv`` into an instance of ``config_cls`` (see the module docstring).

    ``positional`` names fields that leading bare arguments fill, in order
    (``download_checkpoint SOURCE``).

    With ``--print_config`` the resolved config is printed as YAML and the process exits 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = _rewrite_shortcuts(argv, config_cls, positional)
    print_config = "--print_config" in argv
    argv = [arg for arg in argv if arg != "--print_config"]
    files = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--conf"]
    files += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--conf=")]
    for path in files:
        check_keys(config_cls, _load_yaml_file(path), source=path)

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
    config = build_from_namespace(parser, namespace)
    if print_config:
        sys.stdout.write(to_yaml(config))
        sys.stdout.flush()
        sys.exit(0)
    return config


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


def from_dict(config_cls: type[T], values: dict[str, Any], *, source: str) -> T:
    """Build ``config_cls`` from a dict (e.g. a saved run config), with the same key checks."""
    import tempfile

    check_keys(config_cls, values, source=source)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(values, handle)
        handle.flush()
        return load_config(config_cls, handle.name)


def parse_resolution(text: str, *, what: str = "resolution") -> tuple[int, int]:
    """'320x240' -> (320, 240); anything else is a UserError."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not match:
        raise UserError(f"invalid {what} '{text}'", "Write it as WIDTHxHEIGHT, for example 320x240.")
    width, height = int(match.group(1)), int(match.group(2))
    if not (8 <= width <= 8192 and 8 <= height <= 8192):
        raise UserError(f"invalid {what} '{text}': each side must be between 8 and 8192 pixels")
    return width, height


def gather_list_flag(argv: list[str], flag: str) -> list[str]:
    """``--videos a b c`` (shell style) -> ``--videos ["a", "b", "c"]`` (what the config parser reads).

    For list fields of a script's config given as several shell words; a single value that is
    already a list (``--videos "[a, b]"``) passes unchanged."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in (flag, f"--conf.{flag[2:]}"):
            values = []
            i += 1
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
            if len(values) == 1 and values[0].lstrip().startswith("["):
                out += [argv[i - 2], values[0]]
            else:
                out += [flag, json.dumps(values)]
        else:
            out.append(argv[i])
            i += 1
    return out

"""The peer's own generation code (Spokester1), run from an unpacked snapshot beside ours.

Nothing of the peer's is copied here: ``load_peer(peer_dir)`` imports its modules from the
folder and the benchmark calls them as its play loop does. What the folder must hold (the
interface this file relies on):

- ``src/net/helpers.py``: ``generate(*, sample_shape, pixel_flow_matching_helper,
  pixel_denoiser, noise, patch_condition, patch_duration, patch_side_length,
  temporal_window_size, num_denoising_steps, kv_cache, kv_cache_length, cache_at_step, dtype)``
  -> (sample, kv_cache, kv_cache_length): one framelet, its keys and values left in the cache;
- ``src/net/net.py``: ``ViTDenoiser(config)``;
- ``src/net/configuring_net.py``: ``ViTDenoiserConfig`` and ``TransformerConfig``;
- ``src/net/flow_matching.py``: ``FlowMatchingHelper(time_shift_dim=...)``;
- optionally ``conf/base.yaml``, whose ``conf.pixel_denoiser`` section sets the model's other
  choices (norms, gating, pinned adaLN); the benchmark sets only the shapes.

The peer's package is named ``src``, as ours is. Its modules are imported with ours set aside in
``sys.modules`` and ours are put back afterwards; the peer's functions keep their own module
globals, so they run as written. A package the peer imports that is not installed here (its
optical-flow extractor's ``memfof``, used only in training) is replaced by a stub that raises as
soon as anything in it is used; the stubbed names are reported with the results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch
import yaml
from einops import rearrange
from torch import Tensor

from src.common.errors import UserError

PEER_MODULES = {
    "helpers": "src.net.helpers",
    "net": "src.net.net",
    "configuring_net": "src.net.configuring_net",
    "flow_matching": "src.net.flow_matching",
}
PEER_CONDITION_CHANNELS = 3  # the peer's play encodes depth and the flow's u and v per pixel
PEER_TIME_SHIFT_DIM = 65536  # its play's default time shift (it changes the sigmas, not the work)
MAX_STUBS = 20


class Unavailable:
    """A name from a stubbed package: using it in any way says which and why."""

    def __init__(self, name: str):
        self._name = name

    def _refuse(self, *args, **kwargs):
        raise RuntimeError(
            f"{self._name} is a stub (its package is not installed); the timed path must not use it"
        )

    __call__ = _refuse

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        self._refuse()


class StubModule(types.ModuleType):
    """Stands in for a package the peer imports but its generation never uses."""

    __path__: list[str] = []  # a package, so that its submodules can be stubbed too

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Unavailable(f"{self.__name__}.{name}")


@dataclasses.dataclass
class PeerCode:
    """The peer's functions and classes, imported from ``directory``."""

    directory: Path
    commit: str
    generate: Callable
    denoiser_class: type
    denoiser_config_class: type
    transformer_config_class: type
    flow_matching_class: type
    base_config: dict  # conf/base.yaml's pixel_denoiser section ({} without one)
    stubbed_imports: list[str]


def _is_ours(name: str) -> bool:
    return name == "src" or name.startswith("src.")


@contextlib.contextmanager
def _peer_namespace(directory: Path):
    """While inside, ``import src...`` finds the peer's package; ours is back afterwards."""
    ours = {name: sys.modules.pop(name) for name in [n for n in sys.modules if _is_ours(n)]}
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(directory))
        for name in [n for n in sys.modules if _is_ours(n)]:
            del sys.modules[name]
        sys.modules.update(ours)
        importlib.invalidate_caches()


def _import_with_stubs(names: list[str]) -> tuple[dict[str, types.ModuleType], list[str]]:
    """Import ``names`` (inside ``_peer_namespace``), stubbing outside packages that are missing."""
    stubbed: list[str] = []
    while True:
        try:
            return {name: importlib.import_module(name) for name in names}, stubbed
        except ModuleNotFoundError as error:
            missing = error.name or ""
            if not missing or _is_ours(missing) or missing in stubbed or len(stubbed) >= MAX_STUBS:
                raise
            sys.modules[missing] = StubModule(missing)
            stubbed.append(missing)


def snapshot_commit(directory: Path, given: str) -> str:
    """``given``, else the commit of ``directory`` when it is a git work tree of its own."""
    if given:
        return given
    try:
        top = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = top.stdout.split()
    if top.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != directory.resolve():
        return "unknown"  # not a checkout, or a folder inside some other repository
    return lines[1]


def _base_config(directory: Path) -> dict:
    path = directory / "conf" / "base.yaml"
    if not path.is_file():
        return {}

    loaded = yaml.safe_load(path.read_text()) or {}
    return dict((loaded.get("conf") or {}).get("pixel_denoiser") or {})


def load_peer(peer_dir: str | Path, commit: str = "") -> PeerCode:
    """The peer's generation code from an unpacked snapshot; a UserError when it is not one."""
    directory = Path(peer_dir).resolve()
    needed = [directory / (name.replace(".", "/") + ".py") for name in PEER_MODULES.values()]
    if not directory.is_dir():
        raise UserError(f"--peer_dir {peer_dir} is not a folder", "Unpack the peer's snapshot there.")
    absent = [str(path.relative_to(directory)) for path in needed if not path.is_file()]
    if absent:
        raise UserError(
            f"--peer_dir {peer_dir} does not hold the peer's code (no {', '.join(absent)})",
            "Give the root of an unpacked Spokester1 snapshot.",
        )
    stubs_before = set(sys.modules)
    with _peer_namespace(directory):
        try:
            modules, stubbed = _import_with_stubs(list(PEER_MODULES.values()))
        except Exception as error:
            raise UserError(
                f"could not import the peer's code from {peer_dir}: {type(error).__name__}: {error}",
                "Install the package it names, or check that the folder is an unpacked snapshot.",
            ) from error
        finally:
            for name in [n for n in sys.modules if n not in stubs_before and not _is_ours(n)]:
                if isinstance(sys.modules[name], StubModule):
                    del sys.modules[name]  # the peer's modules keep their references
    helpers, net = modules[PEER_MODULES["helpers"]], modules[PEER_MODULES["net"]]
    configuring, flow = modules[PEER_MODULES["configuring_net"]], modules[PEER_MODULES["flow_matching"]]
    try:
        return PeerCode(
            directory=directory,
            commit=snapshot_commit(directory, commit),
            generate=helpers.generate,
            denoiser_class=net.ViTDenoiser,
            denoiser_config_class=configuring.ViTDenoiserConfig,
            transformer_config_class=configuring.TransformerConfig,
            flow_matching_class=flow.FlowMatchingHelper,
            base_config=_base_config(directory),
            stubbed_imports=stubbed,
        )
    except AttributeError as error:
        raise UserError(
            f"the peer's code in {peer_dir} lacks what the benchmark calls: {error}",
            "Give a Spokester1 snapshot with generate, ViTDenoiser and FlowMatchingHelper.",
        ) from error


def build_peer_model(
    code: PeerCode,
    *,
    hidden_dim: int,
    num_blocks: int,
    num_heads: int,
    patch_size: int,
    frames_per_framelet: int,
) -> tuple[torch.nn.Module, dict]:
    """The peer's ``ViTDenoiser`` at these shapes (its base config's other choices), eval mode and
    without gradients, as its ``make_model`` leaves it. Returns (model, the config it was built from)."""
    settings = dict(code.base_config)
    transformer = dict(settings.pop("transformer", None) or {})
    transformer.update(hidden_size=hidden_dim, head_dim=hidden_dim // num_heads)
    patch_pixels = frames_per_framelet * patch_size**2
    settings.update(
        input_size=patch_pixels * 3,
        condition_input_size=patch_pixels * PEER_CONDITION_CHANNELS,
        num_blocks=num_blocks,
    )
    model = code.denoiser_class(
        code.denoiser_config_class(transformer=code.transformer_config_class(**transformer), **settings)
    )
    return model.eval().requires_grad_(False), {**settings, "transformer": transformer}


class PeerSampler:
    """One framelet by the peer's own ``generate``, called as its play loop calls it: the rolling
    KV cache and its length carried from call to call; ``cache_at_step`` None, so the last pass's
    keys and values stay as the framelet's context (the same work as ours with
    ``context_from_last_step``)."""

    def __init__(self, code: PeerCode, model: torch.nn.Module, *, steps: int, window: int, patch: int):
        self.code, self.model, self.steps, self.window, self.patch = code, model, steps, window, patch
        self.helper = code.flow_matching_class(time_shift_dim=PEER_TIME_SHIFT_DIM)
        self.kv_cache: Tensor | None = None
        self.kv_cache_length = 0

    def framelet(self, noise: Tensor, cond: Tensor) -> Tensor:
        """``noise`` b f 3 h w and ``cond`` b f C h w (ours) -> the peer's sample b f h w 3; the
        peer reads patches channels-last and the first three condition planes (its own three)."""
        b, f, _, h, w = noise.shape
        to_patches = "b f c (nph ph) (npw pw) -> b 1 (nph npw) (f ph pw c)"
        noise_patches = rearrange(noise, to_patches, ph=self.patch, pw=self.patch)
        cond_patches = rearrange(
            cond[:, :, :PEER_CONDITION_CHANNELS], to_patches, ph=self.patch, pw=self.patch
        )
        sample, self.kv_cache, self.kv_cache_length = self.code.generate(
            sample_shape=(b, f, h, w, 3),
            pixel_flow_matching_helper=self.helper,
            pixel_denoiser=self.model,
            noise=noise_patches,
            patch_condition=cond_patches,
            patch_duration=f,
            patch_side_length=self.patch,
            temporal_window_size=self.window,
            num_denoising_steps=self.steps,
            kv_cache=self.kv_cache,
            kv_cache_length=self.kv_cache_length,
            cache_at_step=None,
            dtype=torch.float32,
        )
        return sample

"""``--sampling.shift`` reaches the package and the distillation; left out, a run ships its frames'
resolution shift (and a package without a shift samples at 1.0)."""

from __future__ import annotations

import dataclasses
import types

import pytest

from src.diffusion.flow_matching import resolution_shift
from src.runtime.defaults import SamplingDefaults
from src.train.config import TrainConfig
from src.train.package import sampling_defaults

DATA = types.SimpleNamespace(frame_hw=(224, 224))


def test_a_given_shift_is_shipped_and_a_missing_one_is_the_resolution_shift():
    config = TrainConfig()
    expected = resolution_shift(224 * 224, base_pixels=config.diffusion.shift_base_pixels)
    assert expected != pytest.approx(3.0)
    assert sampling_defaults(config, DATA).shift == pytest.approx(expected)
    given = dataclasses.replace(config, sampling=SamplingDefaults(shift=3.0))
    assert sampling_defaults(given, DATA).shift == 3.0


def test_a_package_without_a_shift_samples_at_one(tiny_dit_package):
    from src.runtime.backends import make_renderer
    from src.runtime.package import load_package

    package = load_package(tiny_dit_package)
    assert package.sampling.shift is None
    renderer = make_renderer(package, backend="torch")
    reference = make_renderer(
        dataclasses.replace(package, sampling=dataclasses.replace(package.sampling, shift=1.0)),
        backend="torch",
    )
    assert renderer.sigmas.tolist() == reference.sigmas.tolist()

"""The one table of model kinds (src/runtime/kinds.py) serves every registered model class."""

from __future__ import annotations

import pytest

from src.common.errors import UserError
from src.net.export_step import DirectStep, FrameletStep, RecurrentStep
from src.net.models import RENDERER_MODELS
from src.runtime.kinds import MODEL_KINDS, model_kind
from src.runtime.step_runners import StepDenoiser, StepDirect, StepRecurrent


def test_every_model_class_has_a_row():
    kinds = {cls.__name__: cls.renderer_kind for cls in RENDERER_MODELS.values()}
    assert set(kinds.values()) == set(MODEL_KINDS), kinds
    for name, kind in kinds.items():
        assert model_kind(kind).name == kind, name


def test_rows_name_the_pieces_of_their_kind():
    assert MODEL_KINDS["diffusion"].export_step is FrameletStep
    assert MODEL_KINDS["direct"].export_step is DirectStep
    assert MODEL_KINDS["recurrent"].export_step is RecurrentStep
    # the export file names are part of the packages' ncnn/ folders already on disk
    assert {k: row.export_name for k, row in MODEL_KINDS.items()} == {
        "diffusion": "framelet_step",
        "direct": "direct_step",
        "recurrent": "recurrent_step",
    }
    assert MODEL_KINDS["diffusion"].sigma_input == 2
    assert MODEL_KINDS["direct"].sigma_input is None and MODEL_KINDS["recurrent"].sigma_input is None


def test_step_runners_by_kind():
    class Model:
        frames_per_step = 2

        @staticmethod
        def initial_recurrence(*args, **kwargs):
            return None

    shapes = {"inputs": [[1]] * 6, "outputs": [[1, 3, 8, 8]] * 3, "frame_size": [8, 8]}
    net = object()
    denoiser = model_kind("diffusion").step_runner(net, shapes, Model())
    assert isinstance(denoiser, StepDenoiser) and denoiser.frames_per_framelet == 2
    assert isinstance(model_kind("direct").step_runner(net, shapes, Model()), StepDirect)
    recurrent = model_kind("recurrent").step_runner(net, shapes, Model())
    assert isinstance(recurrent, StepRecurrent) and recurrent.net is net


def test_unknown_kind_is_one_clear_error():
    with pytest.raises(UserError, match="no renderer for model kind 'hologram'"):
        model_kind("hologram")


def test_a_class_training_builds_also_describes_itself():
    """``from_run`` (how a run builds it) and ``card_description`` (its card's opening lines) come together."""
    trained = {name for name, cls in RENDERER_MODELS.items() if hasattr(cls, "from_run")}
    described = {name for name, cls in RENDERER_MODELS.items() if hasattr(cls, "card_description")}
    assert trained == described == {"VelodreamDiT", "StudentUNet", "RegressionNet"}

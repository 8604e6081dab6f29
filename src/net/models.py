"""Every renderer model class, by the name a package's ``config.json`` gives it (``_class_name``,
written by diffusers' ``save_config``). ``load_package`` builds any class listed here.

A renderer model is a diffusers ``ModelMixin`` + ``ConfigMixin`` with

    renderer_kind            "diffusion": sampled by the flow-matching rollout over
                             new_cache / denoise_framelet / push_context (the DiT);
                             "direct": forward_frames(cf: B (f C) h w) -> B (f 3) h w,
                             one network evaluation per step (the flat-colour baseline,
                             the regression baseline)
                             "recurrent": initial_recurrence(b, h, w) -> (feedback, state) and
                             forward_step(cond b C h w, feedback, state) -> (frame, feedback,
                             state), one network evaluation per frame with state carried
                             between frames; ``upscale``: output pixels per condition pixel
                             (the student)
    frames_per_step          frames one step renders
    check_frame_size(h, w)   raises ValueError for a size the model cannot render
    frame_size_hint()        which sizes it takes, for error messages
    compile_inference()      torch.compile what generation runs

and a model that training builds (``model.model_class`` of a run's config) also has the
classmethods

    from_run(config, data)         the model of a run's config (``model``, ``conditions``) and
                                   dataset (``frame_size``, ``stats``)
    card_description(objective)    the lines that open the run's model card

A new model is a new file in ``src/net`` and one line below; a new kind is also one row of
``MODEL_KINDS`` (``src/runtime/kinds.py``: its renderer, export step and ncnn runner).
"""

from __future__ import annotations

from src.common.errors import UserError
from src.net.dit import VelodreamDiT
from src.net.flat_color import FlatColorRenderer
from src.net.regression import RegressionNet
from src.net.student import StudentUNet

RENDERER_MODELS: dict[str, type] = {
    cls.__name__: cls for cls in (VelodreamDiT, FlatColorRenderer, RegressionNet, StudentUNet)
}


def renderer_model_class(name: str | None, *, source: str = "the package") -> type:
    """The registered class called ``name``, or a UserError naming the known ones."""
    if name not in RENDERER_MODELS:
        raise UserError(
            f"{source} names an unknown model class {name!r}",
            f"Known classes: {', '.join(RENDERER_MODELS)}. Update Velodream or re-export the package.",
        )
    return RENDERER_MODELS[name]

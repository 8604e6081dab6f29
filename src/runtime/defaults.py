"""The default package and renderer names and the default sampling, in one light module (no
torch): scripts read them for their flags' defaults before anything heavy is imported."""

import dataclasses

DEFAULT_CHECKPOINT = "game/models/default"  # the bundled package: what play, evaluate and the benchmark use
DEFAULT_RENDERER = "default"  # names a package's (or bundle's) default renderer wherever a name is asked


@dataclasses.dataclass
class SamplingDefaults:
    """How a package's model is run at render time: a diffusion model's sampling
    (``src/diffusion/rollout.py``) and an upscaling student's albedo detail
    (``src/runtime/renderer.py``). A training run's ``sampling`` section is this: its validation
    samples so, its package ships it, and the ``distill`` objective trains the student for it."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "num_denoising_steps": "[1, inf)",
        "context_sigma": "[0, 1)",
        "shift": "(0, inf)",
        "albedo_detail": "[0, 1]",
    }

    num_denoising_steps: int = 2
    """sampling steps per framelet"""
    context_sigma: float = 0.05
    """noise level of the context framelets during generation"""
    shift: float | None = None
    """time shift of the sampling schedule (None: a training run ships its frames' resolution
    shift, and a package without one samples at 1.0)"""
    context_from_last_step: bool = False
    """the last denoising pass's keys/values are the context (no context pass; distilled models)"""
    albedo_detail: float = 0.0
    """a model whose frames lack the finest detail (the student's upscale 2, which reads
    conditions at half its frame size; a DiT whose smooth decoder runs at half size): add this
    much of the full-size albedo's detail, the band it loses, to each frame, where the conditions
    come at the frame size (play and evaluate give them so)"""

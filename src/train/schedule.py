"""The learning-rate schedule: linear warmup, a long steady phase, then a linear cooldown.

Warmup-steady-cooldown (a "trapezoid" or WSD schedule) needs no total-length guess for the
steady part, so a run can be extended; the cooldown runs over the last ``num_cooldown_steps``
of ``max_steps``.
"""

from __future__ import annotations


def linear_warmup(step: int, num_warmup_steps: int) -> float:
    """Multiplier at optimiser step ``step`` (0-based) of a linear rise over ``num_warmup_steps``
    steps, 1 after them (and throughout for 0)."""
    if num_warmup_steps > 0 and step < num_warmup_steps:
        return (step + 1) / num_warmup_steps
    return 1.0


def warmup_steady_cooldown(
    step: int, *, max_steps: int, num_warmup_steps: int, num_cooldown_steps: int, final_fraction: float = 0.0
) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if step < num_warmup_steps:
        return linear_warmup(step, num_warmup_steps)
    cooldown_start = max_steps - num_cooldown_steps
    if num_cooldown_steps > 0 and step >= cooldown_start:
        progress = min(1.0, (step - cooldown_start + 1) / num_cooldown_steps)
        return 1.0 - (1.0 - final_fraction) * progress
    return 1.0

"""Learning-rate warm-up (optional, ``--lr_warmup_steps``; monodepth2 has none): the first N
optimiser steps run at a linearly growing fraction of the scheduler's learning rate. The
StepLR scheduler keeps owning the learning rate; the warm-up only scales it during a step."""
from __future__ import annotations

from contextlib import contextmanager

import torch


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Fraction of the learning rate for optimiser step ``step`` (0-based): (step + 1) / N for
    the first N steps, then 1 (always 1 for N <= 0)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


@contextmanager
def warmed_up(optimizer: torch.optim.Optimizer, step: int, warmup_steps: int):
    """Within the block every parameter group's lr is scaled by ``warmup_factor``; restored
    afterwards, so the scheduler's value (and its checkpoint) is unchanged."""
    factor = warmup_factor(step, warmup_steps)
    saved = [group["lr"] for group in optimizer.param_groups]
    if factor != 1.0:
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * factor
    try:
        yield factor
    finally:
        for group, lr in zip(optimizer.param_groups, saved):
            group["lr"] = lr

"""Exponential moving average of the student's weights, as RTMPose trains it.

RTMPose configs add ``EMAHook(ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True,
priority=49)``: after every training iteration mmengine's averaged model is updated with
mmpose's ``ExpMomentumEMA``. Same numbers here, own code:

* update 0 copies the model (parameters and buffers);
* update s >= 1 (every ``interval`` updates) moves each floating-point entry of the state dict
  towards the model by  m(s) = (1 - momentum) * exp(-(1 + s) / gamma) + momentum:
  avg <- (1 - m) * avg + m * src.  m starts near 1 and anneals to ``momentum``.
* update_buffers=True averages floating-point buffers (BN running stats) too. Integer buffers
  (BN num_batches_tracked) are copied from the model each update; mmengine leaves them at
  their update-0 value (only matters for BN with momentum=None, which RTMPose does not use).

The averaged copy ``ema.module`` has the model's state-dict keys (what is exported / evaluated);
``ema.state_dict()`` adds the update counter for resuming.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def ema_momentum(steps: int, momentum: float = 0.0002, gamma: float = 2000.0) -> float:
    """mmpose ExpMomentumEMA's momentum at update ``steps`` (the number of updates done before)."""
    return (1.0 - momentum) * math.exp(-float(1 + steps) / gamma) + momentum


class ModelEMA:
    """EMA copy of a model. Call ``update(model)`` after each optimizer step.

    Pass the plain module (not a torch.compile / DDP wrapper) so the keys match.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.0002, gamma: float = 2000.0,
                 interval: int = 1, update_buffers: bool = True):
        if not 0.0 < momentum < 1.0:
            raise ValueError(f'ModelEMA: momentum must be in (0, 1), got {momentum}')
        if gamma <= 0:
            raise ValueError(f'ModelEMA: gamma must be > 0, got {gamma}')
        if interval < 1:
            raise ValueError(f'ModelEMA: interval must be >= 1, got {interval}')
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.module.eval()
        self.momentum = float(momentum)
        self.gamma = float(gamma)
        self.interval = int(interval)
        self.update_buffers = bool(update_buffers)
        self.steps = 0

    def _averaged_entries(self, model: nn.Module):
        """(name, averaged tensor, source tensor) for the entries the EMA averages."""
        if self.update_buffers:
            avg, src = self.module.state_dict(keep_vars=True), model.state_dict(keep_vars=True)
        else:
            avg, src = dict(self.module.named_parameters()), dict(model.named_parameters())
        missing = set(avg) - set(src)
        if missing:
            raise KeyError(f'ModelEMA.update: model lacks {sorted(missing)[:3]} '
                           '(pass the same, unwrapped module the EMA was built from)')
        return [(k, avg[k], src[k]) for k in avg]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA update from the model's current weights (mmengine update_parameters)."""
        entries = self._averaged_entries(model)
        if self.steps == 0:
            for _, p_avg, p_src in entries:
                p_avg.data.copy_(p_src.data)
        else:
            do_average = self.steps % self.interval == 0
            m = ema_momentum(self.steps, self.momentum, self.gamma)
            for _, p_avg, p_src in entries:
                if p_avg.dtype.is_floating_point:
                    if do_average:
                        p_avg.data.mul_(1.0 - m).add_(p_src.data.to(p_avg.device), alpha=m)
                else:
                    p_avg.data.copy_(p_src.data)
        if not self.update_buffers:
            # Buffers are not averaged: they follow the model.
            for b_avg, b_src in zip(self.module.buffers(), model.buffers()):
                b_avg.data.copy_(b_src.data.to(b_avg.device))
        self.steps += 1

    def state_dict(self) -> dict:
        """For resuming: the update counter and the averaged weights (model keys)."""
        return dict(steps=self.steps, state_dict=self.module.state_dict())

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or 'steps' not in state or 'state_dict' not in state:
            raise ValueError("ModelEMA.load_state_dict: expected dict(steps=..., state_dict=...), "
                             f"got keys {sorted(state) if isinstance(state, dict) else type(state)}")
        self.module.load_state_dict(state['state_dict'], strict=True)
        self.steps = int(state['steps'])


__all__ = ['ModelEMA', 'ema_momentum']

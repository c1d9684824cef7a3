"""Optimizer parameter groups and the learning-rate schedule of RTMPose, as plain functions.

RTMPose (mmpose projects/rtmpose configs):
  optimizer AdamW(lr=base_lr), paramwise_cfg(norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True)
  LinearLR(start_factor=1e-5, by_epoch=False, begin=0, end=1000)
  CosineAnnealingLR(eta_min=base_lr * 0.05, begin=max_epochs // 2, end=max_epochs,
                    T_max=max_epochs // 2, by_epoch=True, convert_to_iter_based=True)
  auto_scale_lr(base_batch_size=1024), applied only with --auto-scale-lr (`learning_rate`)
``lr_at`` reproduces the lr mmengine's chained schedulers give at each iteration.
"""
from __future__ import annotations

import math

from torch import nn

# The layers mmengine's DefaultOptimWrapperConstructor treats as norms (norm_decay_mult).
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
               nn.GroupNorm, nn.LayerNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW param groups: with weight decay, and without (norm layers and biases).

    mmengine semantics: a parameter gets no decay if its module is a torch norm layer
    (BatchNorm/InstanceNorm/GroupNorm/LayerNorm; custom norms such as RTMCC's ScaleNorm do decay,
    as in mmpose) or if its name in its module is ``bias``. Shared parameters are listed once
    (bypass_duplicate) and frozen ones (requires_grad=False) are left out.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        is_norm = isinstance(module, NORM_LAYERS)
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            (no_decay if is_norm or name == 'bias' else decay).append(param)
    return [dict(params=decay, weight_decay=weight_decay),
            dict(params=no_decay, weight_decay=0.0)]


def scaled_lr(base_lr: float = 4e-3, base_batch: int = 1024, batch: int = 1024) -> float:
    """Linear scaling rule (mmengine auto_scale_lr): lr * batch / base_batch."""
    if base_batch <= 0 or batch <= 0:
        raise ValueError(f'scaled_lr: batch sizes must be > 0, got base_batch={base_batch}, batch={batch}')
    return base_lr * batch / base_batch


def learning_rate(base_lr: float, auto_scale_lr: int | None, batch: int) -> float:
    """The lr of a run, as mmpose sets it: `base_lr` is the lr at the real batch (`batch`, all GPUs);
    with `auto_scale_lr` (mmpose's auto_scale_lr.base_batch_size under --auto-scale-lr) it is scaled
    linearly from that batch to the real one."""
    return float(base_lr) if auto_scale_lr is None else scaled_lr(float(base_lr), int(auto_scale_lr), int(batch))


def cosine_start_step(epochs: int, steps_per_epoch: int) -> int:
    """First iteration of the cosine decay: mmpose's CosineAnnealingLR(begin=max_epochs // 2, by_epoch=True,
    convert_to_iter_based=True) starts at that epoch's first iteration."""
    return (int(epochs) // 2) * int(steps_per_epoch)


def warmup_factor(step: int, warmup_steps: int, start_factor: float = 1e-5) -> float:
    """mmengine LinearLR(begin=0, end=warmup_steps): start_factor at step 0, 1.0 from step
    warmup_steps - 1 on (mmengine spreads the ramp over end - begin - 1 steps)."""
    if warmup_steps <= 1:
        return 1.0
    progress = min(step, warmup_steps - 1) / (warmup_steps - 1)
    return start_factor + (1.0 - start_factor) * progress


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int,
          warmup_start_factor: float = 1e-5, cosine_start: int | None = None,
          eta_min_factor: float = 0.05) -> float:
    """Learning rate used at iteration ``step`` (0-based) of ``total_steps``.

    Linear warmup from base_lr * warmup_start_factor, then base_lr, then from ``cosine_start``
    (default total_steps // 2; pass (max_epochs // 2) * iters_per_epoch for mmpose's exact epoch
    boundary) a half cosine down to eta_min = base_lr * eta_min_factor, reached at total_steps.
    If warmup and cosine overlap (tiny runs) the two factors multiply (mmengine's chained
    schedulers then differ by well under 1%).
    """
    if total_steps <= 0:
        raise ValueError(f'lr_at: total_steps must be > 0, got {total_steps}')
    if step < 0:
        raise ValueError(f'lr_at: step must be >= 0, got {step}')
    if cosine_start is None:
        cosine_start = total_steps // 2
    if not 0 <= cosine_start < total_steps:
        raise ValueError(f'lr_at: cosine_start must be in [0, {total_steps}), got {cosine_start}')
    eta_min = base_lr * eta_min_factor
    if step < cosine_start:
        lr = base_lr
    else:
        progress = min(step - cosine_start, total_steps - cosine_start) / (total_steps - cosine_start)
        lr = eta_min + (base_lr - eta_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * warmup_factor(step, warmup_steps, warmup_start_factor)


__all__ = ['param_groups', 'scaled_lr', 'learning_rate', 'cosine_start_step', 'warmup_factor', 'lr_at', 'NORM_LAYERS']

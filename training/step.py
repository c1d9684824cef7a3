"""The one train step: what stages/train.py runs per batch and benchmarks/train_step.py times.

A step, once the DataLoader has handed a batch over and its teacher targets are built: host->device
copies, normalise (channels_last when asked), student forward (bf16 autocast when asked),
distillation_loss with the recipe's settings, backward, gradient clipping, AdamW step, EMA update.
Pure torch; the recipe arrives as a `StepSettings` built from the validated train section.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from training.ema import ModelEMA
from training.losses import distillation_loss
from training.schedule import param_groups


@dataclass(frozen=True)
class StepSettings:
    """The train section's keys a step reads, resolved for one device and mode."""
    loss_weights: dict
    beta: float  # the student head's SimCC loss beta
    temperature: float
    overlap: str
    gt_reduction: str
    grad_clip: float | None
    amp: bool  # bf16 autocast (CUDA only)
    channels_last: bool  # (CUDA only)

    @classmethod
    def from_recipe(cls, recipe, device: torch.device, beta: float, supervised: bool = False) -> 'StepSettings':
        """`recipe`: the validated train section (pipeline.config.TRAIN_SCHEMA's keys). Supervised:
        ground truth alone (loss_weights {gt: 1})."""
        cuda = device.type == 'cuda'
        return cls(loss_weights={'gt': 1.0} if supervised else dict(recipe['loss_weights']), beta=float(beta),
                   temperature=float(recipe['temperature']), overlap=recipe['overlap'],
                   gt_reduction=recipe['gt_reduction'],
                   grad_clip=float(recipe['grad_clip']) if recipe['grad_clip'] else None,
                   amp=bool(recipe['amp']) and cuda, channels_last=bool(recipe['channels_last']) and cuda)


def make_optimizer(model: torch.nn.Module, weight_decay: float, lr: float) -> torch.optim.AdamW:
    """AdamW, no weight decay on norms and biases."""
    return torch.optim.AdamW(param_groups(model, float(weight_decay)), lr=lr)


class TrainStep:
    """`step(batch, teacher_targets, kd_scale)` -> (loss, parts): one optimisation step of `model`.
    `wrap(model)` gives what runs the batch (the DDP wrapper under torchrun; default the model itself),
    built after the model is in its memory format."""

    def __init__(self, model: torch.nn.Module, optimizer, ema: ModelEMA, settings: StepSettings, wrap=None):
        self.model, self.optimizer, self.ema, self.settings = model, optimizer, ema, settings
        if settings.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = wrap(model) if wrap else model

    def __call__(self, batch: dict, teacher_targets: dict, kd_scale: float = 1.0):
        s, device = self.settings, next(self.model.parameters()).device
        x = self.model.normalize(batch['img'].to(device, non_blocking=True))
        if s.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        targets = dict(gt_x=batch['target_x'].to(device), gt_y=batch['target_y'].to(device),
                       gt_weights=batch['target_weight'].to(device), **teacher_targets)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=s.amp):
            pred_x, pred_y = self.forward(x)
        loss, parts = distillation_loss(pred_x.float(), pred_y.float(), targets, loss_weights=s.loss_weights,
                                        beta=s.beta, temperature=s.temperature, overlap_mode=s.overlap,
                                        kd_scale=kd_scale, gt_reduction=s.gt_reduction)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if s.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        return loss, parts

"""The one train step: what stages/train.py runs per batch and benchmarks/train_step.py times.

A step, once the DataLoader has handed a batch over and its teacher targets are built: host->device
copies, normalise (channels_last when asked), student forward (bf16 autocast when asked),
distillation_loss with the recipe's settings, backward, gradient clipping, AdamW step, EMA update.
Pure torch; the recipe arrives as a `StepSettings` built from the validated train section.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from training.distributed import rank_loss
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
    amp: bool  # bf16 autocast
    channels_last: bool

    @classmethod
    def from_recipe(cls, recipe, device: torch.device, beta: float, supervised: bool = False,
                    amp_channels_last: tuple[bool, bool] | None = None) -> 'StepSettings':
        """`recipe`: the validated train section (pipeline.config.TRAIN_SCHEMA's keys). Supervised:
        ground truth alone (loss_weights {gt: 1}). `amp_channels_last`: default precision(recipe, device)."""
        amp, channels_last = amp_channels_last or precision(recipe, device)
        return cls(loss_weights={'gt': 1.0} if supervised else dict(recipe['loss_weights']), beta=float(beta),
                   temperature=float(recipe['temperature']), overlap=recipe['overlap'],
                   gt_reduction=recipe['gt_reduction'],
                   grad_clip=float(recipe['grad_clip']) if recipe['grad_clip'] else None,
                   amp=amp, channels_last=channels_last)


def precision(recipe, device: torch.device) -> tuple[bool, bool]:
    """(bf16 autocast, channels_last) of the step: as configured on CUDA; off on CPU, where bf16 autocast
    is slower than fp32 on most CPUs (tests/stages/test_train_precision.py forces both on the CPU to run
    the GPU's code path)."""
    on = device.type == 'cuda'
    return bool(recipe['amp']) and on, bool(recipe['channels_last']) and on


def make_optimizer(model: torch.nn.Module, weight_decay: float, lr: float) -> torch.optim.AdamW:
    """AdamW, no weight decay on norms and biases."""
    return torch.optim.AdamW(param_groups(model, float(weight_decay)), lr=lr)


class TrainStep:
    """`step(batch, teacher_targets, kd_scale, global_batch)` -> (loss, parts): one optimisation step of
    `model`. `wrap(model)` gives what runs the batch (the DDP wrapper under torchrun; default the model
    itself), built after the model is in its memory format. Under DDP (`world` > 1) each rank
    back-propagates training.distributed.rank_loss, so the averaged gradient is one process's on the
    global batch of `global_batch` items."""

    def __init__(self, model: torch.nn.Module, optimizer, ema: ModelEMA, settings: StepSettings, wrap=None,
                 world: int = 1):
        self.model, self.optimizer, self.ema, self.settings, self.world = model, optimizer, ema, settings, world
        if settings.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = wrap(model) if wrap else model
        if wrap:  # the wrapper (DDP) broadcast rank 0's weights: the EMA starts from them on every rank
            ema.module.load_state_dict(model.state_dict())
        # loss terms summed over the batch, not averaged (their DDP gradient scales with the world)
        self.batch_summed = ('gt',) if settings.gt_reduction == 'mmpose' else ()
        self.clipped_norm = None

    def grad_norm(self) -> torch.Tensor:
        """The total gradient norm of the last step (before clipping), for logging."""
        if self.clipped_norm is not None:
            return self.clipped_norm
        return torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])

    def __call__(self, batch: dict, teacher_targets: dict, kd_scale: float = 1.0, global_batch: int | None = None):
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
        (loss if self.world == 1 else rank_loss(parts, len(x), global_batch, self.world, self.batch_summed)).backward()
        self.clipped_norm = None
        if s.grad_clip:
            self.clipped_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        return loss, parts

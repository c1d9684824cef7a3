"""Data parallel training under torchrun: which items of an epoch each rank trains on, the loss each rank
back-propagates so that DDP's averaged gradient is one process's gradient on the same global batch, the
epoch's loss sums over all ranks, and SyncBatchNorm (torch's on GPUs; on CPU, where torch's refuses
CPU tensors, the same statistics through a differentiable all_reduce over gloo)."""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist


def rank_items(order: np.ndarray, rank: int, world: int, global_batch: int) -> np.ndarray:
    """Rank `rank`'s items of an epoch whose global order is `order`: the strided share order[rank::world].
    Its k-th batch of global_batch / world items is then the rank's part of the k-th global batch
    (order[k*G:(k+1)*G]), so the ranks' batches of a step together are one process's batch. A last
    global batch smaller than the world (at most world - 1 items) is dropped: some rank would have no
    batch for that step and the others would wait for it forever."""
    if world > 1:
        tail = len(order) % global_batch
        if 0 < tail < world:
            order = order[:len(order) - tail]
    return order[rank::world]


def global_batch_sizes(n_items: int, global_batch: int, world: int) -> list[int]:
    """Sizes of an epoch's global batches (after rank_items' drop) for n_items in its order."""
    if world > 1 and 0 < n_items % global_batch < world:
        n_items -= n_items % global_batch
    return [min(global_batch, n_items - start) for start in range(0, n_items, global_batch)]


def rank_loss(parts: dict, n_rank: int, n_global: int, world: int, batch_summed: tuple = ()) -> torch.Tensor:
    """The loss this rank back-propagates. DDP averages the ranks' gradients; a term that is a mean over
    the rank's n_rank items is weighted by n_rank * world / n_global and a term summed over the batch
    (`batch_summed`, e.g. the gt term with gt_reduction='mmpose') by world, so that the average is the
    gradient of the loss over the global batch of n_global items, as one process computes it."""
    total = 0.0
    for name, value in parts.items():
        total = total + value * (world if name in batch_summed else n_rank * world / n_global)
    return total


def reduce_sums(n_seen: int, sums: dict, device) -> tuple[int, dict]:
    """The epoch's item count and per-term loss sums added up over all ranks (for the log)."""
    names = sorted(sums)
    packed = torch.stack([torch.as_tensor(float(n_seen), device=device)] +
                         [sums[k].detach().float().reshape(()) for k in names])
    dist.all_reduce(packed)
    return int(packed[0].item()), dict(zip(names, packed[1:]))


class GlooSyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """SyncBatchNorm for CPU tensors (torch's raises on them, and DDP refuses its modules off the GPU): in
    training, the batch mean and variance are taken over every rank's batch, through torch.distributed.nn's
    all_reduce, whose backward all-reduces the gradient, so the gradient is the one BatchNorm gives on the
    concatenated batch. The running statistics take the unbiased variance, as BatchNorm does. Outside a
    process group, and in eval mode, it is plain BatchNorm."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f'expected at least 2D input (got {x.dim()}D input)')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce
        dims = [0] + list(range(2, x.dim()))
        c = x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            with torch.no_grad():
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


def _gloo_sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    out = module
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        out = GlooSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
        out.load_state_dict(module.state_dict())
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _gloo_sync_batchnorm(child))
    return out


def convert_sync_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Every BatchNorm of `model` synchronised over the ranks: torch.nn.SyncBatchNorm.convert_sync_batchnorm
    on GPUs, GlooSyncBatchNorm on CPU. The state dict keys stay BatchNorm's, so checkpoints load either way."""
    if device.type == 'cpu':
        return _gloo_sync_batchnorm(model)
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

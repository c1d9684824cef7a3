"""Tests of training/schedule.py: param groups, the RTMPose lr schedule, linear lr scaling."""
import math
import warnings

import pytest
import torch
from torch import nn

from training.schedule import lr_at, param_groups, scaled_lr, warmup_factor


class _ScaleNorm(nn.Module):
    """Stands for RTMCC's ScaleNorm: a custom norm mmengine does not recognise (decays)."""

    def __init__(self):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1))


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 4, bias=True)
        self.scale_norm = _ScaleNorm()
        self.tied = nn.Linear(4, 4, bias=False)
        self.tied.weight = self.fc.weight  # shared: listed once
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def _decay_by_name(model, groups):
    by_id = {id(p): g['weight_decay'] for g in groups for p in g['params']}
    return {n: by_id.get(id(p)) for n, p in model.named_parameters()}


def test_param_groups_no_decay_on_norms_and_biases():
    model = _Net()
    groups = param_groups(model, 0.05)
    decay = _decay_by_name(model, groups)
    assert decay == {
        'conv.weight': 0.05, 'conv.bias': 0.0, 'bn.weight': 0.0, 'bn.bias': 0.0,
        'gn.weight': 0.0, 'gn.bias': 0.0, 'ln.weight': 0.0, 'ln.bias': 0.0,
        'fc.weight': 0.05, 'fc.bias': 0.0, 'scale_norm.g': 0.05,
        'frozen.weight': None, 'frozen.bias': None}
    n_listed = sum(len(g['params']) for g in groups)
    assert n_listed == len({id(p) for g in groups for p in g['params']})
    torch.optim.AdamW(groups, lr=1e-3)  # accepted by torch


def test_param_groups_match_mmengine_constructor():
    constructor = pytest.importorskip('mmengine.optim.optimizer.default_constructor')
    model = _Net()
    cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.05))
    paramwise = dict(norm_decay_mult=0, bias_decay_mult=0, bypass_duplicate=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        wrapper = constructor.DefaultOptimWrapperConstructor(cfg, paramwise)(model)
    ref = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    ours = {id(p): g['weight_decay'] for g in param_groups(model, 0.05) for p in g['params']}
    assert ours == ref


def _mmengine_lrs(base_lr, iters_per_epoch, max_epochs, warmup):
    """The lr per iteration of RTMPose's two chained mmengine schedulers."""
    sched = pytest.importorskip('mmengine.optim.scheduler.lr_scheduler')
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=base_lr)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        linear = sched.LinearLR(opt, start_factor=1e-5, by_epoch=False, begin=0, end=warmup)
        cosine = sched.CosineAnnealingLR.build_iter_from_epoch(
            opt, eta_min=base_lr * 0.05, begin=max_epochs // 2, end=max_epochs,
            T_max=max_epochs // 2, by_epoch=True, epoch_length=iters_per_epoch)
        lrs = []
        for _ in range(iters_per_epoch * max_epochs):
            lrs.append(opt.param_groups[0]['lr'])
            linear.step()
            cosine.step()
    return lrs


def test_lr_at_matches_mmengine_schedulers():
    base_lr, ipe, epochs, warmup = 4e-3, 7, 10, 12
    ref = _mmengine_lrs(base_lr, ipe, epochs, warmup)
    total = ipe * epochs
    ours = [lr_at(s, total, base_lr, warmup, cosine_start=(epochs // 2) * ipe) for s in range(total)]
    for s, (a, b) in enumerate(zip(ours, ref)):
        assert a == pytest.approx(b, rel=1e-6), s


def test_lr_schedule_shape():
    base, total, warmup = 1e-3, 1000, 100
    lrs = [lr_at(s, total, base, warmup) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(base * 1e-5)
    assert lrs[warmup - 1] == pytest.approx(base)
    assert all(a < b for a, b in zip(lrs[:warmup - 1], lrs[1:warmup]))  # warmup rises
    assert all(lr == pytest.approx(base) for lr in lrs[warmup - 1:501])  # flat middle
    assert all(a > b for a, b in zip(lrs[500:], lrs[501:]))  # cosine falls
    assert lrs[750] == pytest.approx(base * 0.05 + (base - base * 0.05) * 0.5)
    assert lrs[total] == pytest.approx(base * 0.05)  # eta_min at the end
    assert lrs[total - 1] > base * 0.05
    assert warmup_factor(5, 0) == 1.0 and warmup_factor(5, 1) == 1.0
    assert lr_at(10, 20, 1.0, 0, cosine_start=0) == pytest.approx(
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    with pytest.raises(ValueError, match='cosine_start'):
        lr_at(0, 10, 1.0, 0, cosine_start=10)


def test_scaled_lr():
    assert scaled_lr(4e-3, 1024, 1024) == pytest.approx(4e-3)
    assert scaled_lr(4e-3, 1024, 64) == pytest.approx(2.5e-4)
    assert scaled_lr(batch=256) == pytest.approx(1e-3)
    with pytest.raises(ValueError):
        scaled_lr(4e-3, 1024, 0)

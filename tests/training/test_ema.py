"""Tests of training/ema.py: ExpMomentumEMA momentum, update rule, buffers, resume."""
import math

import pytest
import torch
from torch import nn

from training.ema import ModelEMA, ema_momentum


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 2))


def _train_step(model, seed):
    """Change parameters and BN buffers like a training step would."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    model(torch.randn(2, 3, 8, 8, generator=g))  # updates BN running stats and counter
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def test_momentum_formula():
    assert ema_momentum(0, 0.0002, 2000) == pytest.approx(0.9998 * math.exp(-1 / 2000) + 0.0002)
    assert ema_momentum(1999, 0.0002, 2000) == pytest.approx(0.9998 * math.exp(-1.0) + 0.0002)
    assert ema_momentum(10 ** 7) == pytest.approx(0.0002)
    values = [ema_momentum(s) for s in range(0, 20000, 1000)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_first_update_copies_then_averages_with_exp_momentum():
    model = _model()
    ema = ModelEMA(model, momentum=0.0002, gamma=2000.0)
    _train_step(model, 1)
    ema.update(model)  # update 0: copy
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ema.module.state_dict()[k], v, rtol=0, atol=0)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    _train_step(model, 2)
    ema.update(model)  # update 1: average with m(1)
    m = (1 - 0.0002) * math.exp(-2 / 2000) + 0.0002
    src = model.state_dict()
    for k, v in ema.module.state_dict().items():
        if v.dtype.is_floating_point:  # parameters and BN running stats are averaged
            torch.testing.assert_close(v, (1 - m) * before[k] + m * src[k], rtol=1e-6, atol=1e-7)
        else:  # num_batches_tracked follows the model
            assert torch.equal(v, src[k])
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert set(ema.module.state_dict()) == set(model.state_dict())
    assert ema.steps == 2


def test_buffers_copied_when_not_averaged():
    model = _model()
    ema = ModelEMA(model, update_buffers=False)
    for s in range(3):
        _train_step(model, s)
        ema.update(model)
    for name, buf in model.named_buffers():
        assert torch.equal(dict(ema.module.named_buffers())[name], buf)
    w_model, w_ema = model[0].weight, ema.module[0].weight
    assert not torch.equal(w_model, w_ema)  # parameters are averaged, not copied


def test_matches_mmengine_averaged_model():
    averaged_model = pytest.importorskip('mmengine.model.averaged_model')

    class RefExpMomentumEMA(averaged_model.ExponentialMovingAverage):
        # mmpose ExpMomentumEMA's avg_func, written from its formula.
        def avg_func(self, averaged_param, source_param, steps):
            m = (1 - self.momentum) * math.exp(-float(1 + steps) / 2000) + self.momentum
            averaged_param.mul_(1 - m).add_(source_param, alpha=m)

    model = _model()
    ref = RefExpMomentumEMA(model, momentum=0.0002, update_buffers=True)
    ema = ModelEMA(model, momentum=0.0002, gamma=2000, update_buffers=True)
    for s in range(6):
        _train_step(model, s)
        ref.update_parameters(model)
        ema.update(model)
    ref_sd = ref.module.state_dict()
    for k, v in ema.module.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, ref_sd[k], rtol=1e-6, atol=1e-7)
    assert int(ref.steps) == ema.steps


def test_resume_is_exact():
    model = _model()
    ema = ModelEMA(model)
    for s in range(4):
        _train_step(model, s)
        ema.update(model)
    saved = ema.state_dict()
    saved = {'steps': saved['steps'], 'state_dict': {k: v.clone() for k, v in saved['state_dict'].items()}}
    resumed = ModelEMA(_model(seed=123))
    resumed.load_state_dict(saved)
    assert resumed.steps == 4
    for s in range(4, 7):
        _train_step(model, s)
        ema.update(model)
        resumed.update(model)
    for k, v in ema.module.state_dict().items():
        assert torch.equal(v, resumed.module.state_dict()[k]), k
    with pytest.raises(ValueError, match='steps'):
        resumed.load_state_dict({'state_dict': saved['state_dict']})

"""Tests of training/step.py: the one train step applies the recipe it is given (loss settings,
gradient clipping, EMA), and StepSettings reads the recipe as the train stage must."""
import copy

import pytest
import torch
from torch import nn

from training.ema import ModelEMA
from training.losses import distillation_loss
from training.step import StepSettings, TrainStep, make_optimizer

K, BX, BY, H, W = 4, 12, 16, 8, 6


class Tiny(nn.Module):
    """A SimCC model in miniature: normalize(uint8 NHWC) and forward -> (x logits, y logits)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * H * W, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.head_x, self.head_y = nn.Linear(32, K * BX), nn.Linear(32, K * BY)

    def normalize(self, img):
        return img.permute(0, 3, 1, 2).float() / 255.0

    def forward(self, x):
        f = self.body(x)
        return self.head_x(f).view(-1, K, BX), self.head_y(f).view(-1, K, BY)


def _batch_and_targets(seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    batch = dict(img=torch.randint(0, 256, (n, H, W, 3), generator=g, dtype=torch.uint8),
                 target_x=torch.softmax(torch.randn(n, K, BX, generator=g), -1),
                 target_y=torch.softmax(torch.randn(n, K, BY, generator=g), -1),
                 target_weight=torch.ones(n, K))
    teachers = {}
    for name, joints in (('coco', [0, 1, 2]), ('mpii', [1, 2, 3])):  # joints 1, 2: covered by both
        coverage = torch.zeros(K)
        coverage[joints] = 1
        teachers[name] = dict(logp_x=torch.log_softmax(torch.randn(n, K, BX, generator=g), -1),
                              logp_y=torch.log_softmax(torch.randn(n, K, BY, generator=g), -1), coverage=coverage)
    return batch, teachers


RECIPE = dict(loss_weights=dict(gt=0.3, coco=0.25, mpii=0.45), temperature=2.0, overlap='confidence',
              gt_reduction='batch_mean', grad_clip=None, amp=True, channels_last=True)


def test_settings_from_recipe():
    s = StepSettings.from_recipe(RECIPE, torch.device('cpu'), beta=10.0)
    assert s.loss_weights == RECIPE['loss_weights'] and s.overlap == 'confidence' and s.temperature == 2.0
    assert s.gt_reduction == 'batch_mean' and s.grad_clip is None and s.beta == 10.0
    assert not s.amp and not s.channels_last  # both CUDA only
    assert StepSettings.from_recipe(RECIPE, torch.device('cpu'), 10.0, supervised=True).loss_weights == {'gt': 1.0}
    assert StepSettings.from_recipe(dict(RECIPE, grad_clip=1), torch.device('cpu'), 10.0).grad_clip == 1.0


def test_step_is_the_recipes_loss_backward_adamw_and_ema():
    """One step equals the recipe's loss (overlap mode, temperature, gt_reduction, weights, kd_scale)
    followed by backward, AdamW and the EMA update, done by hand on a copy of the same model."""
    torch.manual_seed(0)
    model = Tiny()
    ref = copy.deepcopy(model)
    batch, teachers = _batch_and_targets()
    settings = StepSettings.from_recipe(RECIPE, torch.device('cpu'), beta=10.0)
    step = TrainStep(model, make_optimizer(model, 0.05, 1e-2), ModelEMA(model), settings)
    loss, parts = step(batch, teachers, kd_scale=0.5)

    ref_opt, ref_ema = make_optimizer(ref, 0.05, 1e-2), ModelEMA(ref)
    px, py = ref(ref.normalize(batch['img']))
    targets = dict(gt_x=batch['target_x'], gt_y=batch['target_y'], gt_weights=batch['target_weight'], **teachers)
    want, want_parts = distillation_loss(px, py, targets, loss_weights=RECIPE['loss_weights'], beta=10.0,
                                         temperature=2.0, overlap_mode='confidence', kd_scale=0.5,
                                         gt_reduction='batch_mean')
    ref_opt.zero_grad()
    want.backward()
    ref_opt.step()
    ref_ema.update(ref)
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    assert set(parts) == set(want_parts) and 'overlap' in parts  # the combining mode's term
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)
    for (k, a), b in zip(step.ema.module.state_dict().items(), ref_ema.module.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_step_clips_the_gradient_norm_to_the_recipe():
    """With plain SGD at lr 1 the parameter change is the gradient: its norm is the recipe's grad_clip
    when clipping is on, larger when it is off."""
    batch, teachers = _batch_and_targets(seed=1)
    moved = {}
    for clip in (None, 1e-3):
        torch.manual_seed(0)
        model = Tiny()
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        settings = StepSettings.from_recipe(dict(RECIPE, grad_clip=clip), torch.device('cpu'), beta=10.0)
        TrainStep(model, torch.optim.SGD(model.parameters(), lr=1.0), ModelEMA(model), settings)(batch, teachers)
        moved[clip] = float((torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm())
    assert moved[1e-3] == pytest.approx(1e-3, rel=1e-3)
    assert moved[None] > 10 * 1e-3

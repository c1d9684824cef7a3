"""Tests of training/losses.py against straightforward loop references and exact properties."""
import math

import numpy as np
import pytest
import torch

from training.losses import (combine_teachers, distillation_loss, kd_loss, kd_weight_schedule,
                           simcc_kl_loss)

N, K, BX, BY = 3, 5, 12, 16


def _rand(*shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).float() * scale


def _np_log_softmax(v):
    v = np.asarray(v, dtype=np.float64)
    m = v.max()
    return v - m - math.log(np.exp(v - m).sum())


def _gaussian_labels(n, k, bins, seed):
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0, bins, size=(n, k, 1))
    x = np.arange(bins)
    return torch.tensor(np.exp(-((x - mu) ** 2) / (2 * 2.0 ** 2)), dtype=torch.float32)


# ------------------------------------------------------------------ simcc_kl_loss
def _ref_kl_discret(preds, targets, w, beta, label_beta):
    """Loop version of mmpose KLDiscretLoss(label_softmax=True): mean over bins, sum over N*K, / K."""
    total = 0.0
    for pred, target in zip(preds, targets):
        n, k, _ = pred.shape
        for i in range(n):
            for j in range(k):
                logq = _np_log_softmax(pred[i, j].double().numpy() * beta)
                logt = _np_log_softmax(target[i, j].double().numpy() * label_beta)
                t = np.exp(logt)
                total += w[i, j] * np.mean(t * (logt - logq))
    return total / preds[0].shape[1]


def test_simcc_kl_loss_matches_loop_reference():
    px, py = _rand(N, K, BX, seed=1), _rand(N, K, BY, seed=2)
    tx, ty = _gaussian_labels(N, K, BX, 3), _gaussian_labels(N, K, BY, 4)
    w = torch.tensor(np.random.default_rng(5).uniform(0, 1, size=(N, K)), dtype=torch.float32)
    got = simcc_kl_loss(px, py, tx, ty, w, beta=10.0, label_softmax=True, label_beta=10.0)
    ref = _ref_kl_discret((px, py), (tx, ty), w.numpy(), 10.0, 10.0)
    assert got.item() == pytest.approx(ref, rel=1e-5)


def test_simcc_kl_loss_properties():
    tx, ty = _gaussian_labels(N, K, BX, 3), _gaussian_labels(N, K, BY, 4)
    w = torch.ones(N, K)
    # beta == label_beta and pred == label: the two distributions are equal.
    assert simcc_kl_loss(tx, ty, tx, ty, w).item() == pytest.approx(0.0, abs=1e-6)
    px, py = _rand(N, K, BX, seed=1), _rand(N, K, BY, seed=2)
    loss = simcc_kl_loss(px, py, tx, ty, w)
    assert loss.item() > 0
    assert simcc_kl_loss(px, py, tx, ty, torch.zeros(N, K)).item() == 0.0
    unweighted = simcc_kl_loss(px, py, tx, ty, torch.zeros(N, K), use_target_weight=False)
    assert unweighted.item() == pytest.approx(loss.item(), rel=1e-6)
    # mmpose sums the batch: duplicating the batch doubles the loss.
    double = simcc_kl_loss(torch.cat([px, px]), torch.cat([py, py]), torch.cat([tx, tx]),
                           torch.cat([ty, ty]), torch.ones(2 * N, K))
    assert double.item() == pytest.approx(2 * loss.item(), rel=1e-5)


def test_simcc_kl_loss_batch_mean_reduction():
    px, py = _rand(N, K, BX, seed=1), _rand(N, K, BX, seed=2)  # same bins on both axes
    tx, ty = _gaussian_labels(N, K, BX, 3), _gaussian_labels(N, K, BX, 4)
    w = torch.ones(N, K)
    mm = simcc_kl_loss(px, py, tx, ty, w)
    bm = simcc_kl_loss(px, py, tx, ty, w, reduction='batch_mean')
    assert bm.item() == pytest.approx(mm.item() * BX / N, rel=1e-5)


def test_simcc_kl_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match='differ in shape'):
        simcc_kl_loss(_rand(N, K, BX), _rand(N, K, BY), _rand(N, K, BX + 1), _rand(N, K, BY),
                      torch.ones(N, K))


# ------------------------------------------------------------------ kd_loss
def _ref_kd(students, teachers, w, beta, temperature=1.0):
    """Loop version of mmpose KDLoss (+ per-joint weights, temperature): sum over bins,
    weighted sum over joints, mean over batch, per axis; x + y; / K; * T^2."""
    total = 0.0
    s_beta = beta / temperature
    for s, t in zip(students, teachers):
        n, k, _ = s.shape
        axis = 0.0
        for i in range(n):
            for j in range(k):
                logq = _np_log_softmax(s[i, j].double().numpy() * s_beta)
                logp = _np_log_softmax(t[i, j].double().numpy() * s_beta)
                axis += w[i, j] * np.sum(np.exp(logp) * (logp - logq))
        total += axis / n
    return total / students[0].shape[1] * temperature ** 2


def test_kd_loss_matches_mmpose_formula_on_raw_teacher_logits():
    sx, sy = _rand(N, K, BX, seed=1), _rand(N, K, BY, seed=2)
    zx, zy = _rand(N, K, BX, seed=3), _rand(N, K, BY, seed=4)  # raw teacher logits
    ones = np.ones((N, K))
    ref = _ref_kd((sx, sy), (zx, zy), ones, beta=10.0)
    # Raw logits and their log-softmax (what the cache stores) give the same loss.
    assert kd_loss(sx, sy, zx, zy).item() == pytest.approx(ref, rel=1e-5)
    lx, ly = torch.log_softmax(zx, -1), torch.log_softmax(zy, -1)
    assert kd_loss(sx, sy, lx, ly, torch.ones(N, K)).item() == pytest.approx(ref, rel=1e-5)
    # Subtracting a constant per row (mass outside the crop) does not change the target either.
    assert kd_loss(sx, sy, lx - 0.7, ly - 0.2).item() == pytest.approx(ref, rel=1e-5)


def test_kd_loss_weights_temperature_and_zero():
    sx, sy = _rand(N, K, BX, seed=1), _rand(N, K, BY, seed=2)
    zx, zy = _rand(N, K, BX, seed=3), _rand(N, K, BY, seed=4)
    w = np.random.default_rng(0).uniform(0, 1, size=(N, K))
    got = kd_loss(sx, sy, zx, zy, torch.tensor(w, dtype=torch.float32), temperature=2.0)
    assert got.item() == pytest.approx(_ref_kd((sx, sy), (zx, zy), w, 10.0, 2.0), rel=1e-5)
    assert kd_loss(sx, sy, sx, sy).item() == pytest.approx(0.0, abs=1e-6)
    # Per-axis weights: zero on y leaves only the x half.
    wt = torch.ones(N, K)
    x_only = kd_loss(sx, sy, zx, zy, (wt, torch.zeros(N, K)))
    x_ref = _ref_kd((sx,), (zx,), np.ones((N, K)), 10.0)
    assert x_only.item() == pytest.approx(x_ref, rel=1e-5)


def test_kd_loss_gradient_is_weighted_prob_difference():
    sx = _rand(N, K, BX, seed=1).requires_grad_(True)
    sy = _rand(N, K, BY, seed=2).requires_grad_(True)
    zx, zy = _rand(N, K, BX, seed=3), _rand(N, K, BY, seed=4)
    w = torch.rand(N, K, generator=torch.Generator().manual_seed(9))
    kd_loss(sx, sy, zx, zy, w).backward()
    beta = 10.0
    expect = beta * w[..., None] * (torch.softmax(sx.detach() * beta, -1)
                                    - torch.softmax(zx * beta, -1)) / (N * K)
    torch.testing.assert_close(sx.grad, expect, rtol=1e-4, atol=1e-7)


def test_kd_loss_ignores_nan_in_zero_weight_rows():
    sx = _rand(N, K, BX, seed=1).requires_grad_(True)
    sy = _rand(N, K, BY, seed=2).requires_grad_(True)
    zx, zy = _rand(N, K, BX, seed=3), _rand(N, K, BY, seed=4)
    w = torch.ones(N, K)
    w[:, 0] = 0
    clean = kd_loss(sx, sy, zx, zy, w)
    zx2, zy2 = zx.clone(), zy.clone()
    zx2[:, 0] = float('nan')
    zy2[:, 0] = float('-inf')
    dirty = kd_loss(sx, sy, zx2, zy2, w)
    assert dirty.item() == pytest.approx(clean.item(), rel=1e-6)
    dirty.backward()
    assert torch.isfinite(sx.grad).all() and torch.isfinite(sy.grad).all()


# ------------------------------------------------------------------ combine_teachers
def _peak(bins, centre, width):
    x = torch.arange(bins, dtype=torch.float32)
    return torch.log_softmax(-((x - centre) ** 2) / (2 * width ** 2), -1)


@pytest.mark.parametrize('mode', ['mean', 'product', 'confidence'])
def test_combine_teachers_normalised_and_identity(mode):
    a = _rand(N, K, BX, seed=1, scale=3.0)
    b = _rand(N, K, BX, seed=2, scale=3.0)
    out = combine_teachers(a, b, 0.25, 0.45, mode=mode)
    torch.testing.assert_close(torch.logsumexp(out, -1), torch.zeros(N, K), atol=1e-5, rtol=0)
    # Teachers that agree (up to normalisation) give that distribution back.
    same = combine_teachers(a, a - 2.0, 0.25, 0.45, mode=mode)
    torch.testing.assert_close(same, torch.log_softmax(a, -1), atol=1e-5, rtol=1e-5)
    # A teacher with weight 0 drops out.
    only_b = combine_teachers(a, b, 0.0, 1.0, mode=mode)
    torch.testing.assert_close(only_b, torch.log_softmax(b, -1), atol=1e-5, rtol=1e-5)


def test_combine_teachers_mean_and_product_formulas():
    a = torch.log_softmax(_rand(N, K, BX, seed=1, scale=2.0), -1)
    b = torch.log_softmax(_rand(N, K, BX, seed=2, scale=2.0), -1)
    wa = torch.rand(N, K, generator=torch.Generator().manual_seed(3))
    wb = 1.0 - wa
    mean = combine_teachers(a, b, wa, wb, mode='mean')
    expect = torch.log(wa[..., None] * a.exp() + wb[..., None] * b.exp())
    torch.testing.assert_close(mean, expect, atol=1e-5, rtol=1e-5)
    prod = combine_teachers(a, b, 2 * wa, 2 * wb, mode='product')  # only the ratio matters
    geo = wa[..., None] * a + wb[..., None] * b
    torch.testing.assert_close(prod, geo - torch.logsumexp(geo, -1, keepdim=True), atol=1e-5, rtol=1e-5)


def test_combine_teachers_mode_behaviour():
    bins = 64
    a, b = _peak(bins, 20.0, 3.0), _peak(bins, 40.0, 3.0)
    mean = combine_teachers(a, b, 1.0, 1.0, mode='mean').exp()
    prod = combine_teachers(a, b, 1.0, 1.0, mode='product').exp()
    # A mixture keeps both modes; the geometric pool has one peak in between.
    assert mean[20] > mean[30] and mean[40] > mean[30]
    assert int(prod.argmax()) == 30
    # Confidence: a sharp teacher outweighs a vague one at equal teacher weights.
    sharp, vague = _peak(bins, 20.0, 1.0), _peak(bins, 40.0, 8.0)
    conf = combine_teachers(sharp, vague, 1.0, 1.0, mode='confidence').exp()
    mix = combine_teachers(sharp, vague, 1.0, 1.0, mode='mean').exp()
    assert conf[:30].sum() > mix[:30].sum() > 0.5
    pa, pb = sharp.exp().max(), vague.exp().max()
    expect = (pa * sharp.exp() + pb * vague.exp()) / (pa + pb)
    torch.testing.assert_close(conf, expect, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ distillation_loss
COCO_COV = torch.tensor([True] * 3 + [False] * 2)   # joints 0..2
MPII_COV = torch.tensor([False] + [True] * 4)       # joints 1..4; overlap = 1, 2


def _targets(seed=0, agree=False):
    tx, ty = _gaussian_labels(N, K, BX, seed + 1), _gaussian_labels(N, K, BY, seed + 2)
    gw = torch.ones(N, K)
    gw[0, 3] = 0
    coco = dict(logp_x=torch.log_softmax(_rand(N, K, BX, seed=seed + 3), -1),
                logp_y=torch.log_softmax(_rand(N, K, BY, seed=seed + 4), -1), coverage=COCO_COV)
    if agree:
        mpii = dict(logp_x=coco['logp_x'], logp_y=coco['logp_y'], coverage=MPII_COV)
    else:
        mpii = dict(logp_x=torch.log_softmax(_rand(N, K, BX, seed=seed + 5), -1),
                    logp_y=torch.log_softmax(_rand(N, K, BY, seed=seed + 6), -1), coverage=MPII_COV)
    return dict(gt_x=tx, gt_y=ty, gt_weights=gw, coco=coco, mpii=mpii)


def test_distillation_separate_is_the_weighted_sum_of_its_terms():
    sx, sy = _rand(N, K, BX, seed=10), _rand(N, K, BY, seed=11)
    t = _targets()
    lw = dict(gt=0.3, coco=0.25, mpii=0.45)
    total, terms = distillation_loss(sx, sy, t, lw, overlap_mode='separate')
    gt = simcc_kl_loss(sx, sy, t['gt_x'], t['gt_y'], t['gt_weights'])
    coco = kd_loss(sx, sy, t['coco']['logp_x'], t['coco']['logp_y'],
                   COCO_COV.float().expand(N, K))
    mpii = kd_loss(sx, sy, t['mpii']['logp_x'], t['mpii']['logp_y'],
                   MPII_COV.float().expand(N, K))
    assert set(terms) == {'gt', 'coco', 'mpii'}
    assert terms['gt'].item() == pytest.approx(0.3 * gt.item(), rel=1e-6)
    assert terms['coco'].item() == pytest.approx(0.25 * coco.item(), rel=1e-6)
    assert terms['mpii'].item() == pytest.approx(0.45 * mpii.item(), rel=1e-6)
    assert total.item() == pytest.approx(sum(v.item() for v in terms.values()), rel=1e-6)


def test_distillation_separate_and_mean_share_gradients():
    t = _targets()
    grads = {}
    for mode in ('separate', 'mean'):
        sx = _rand(N, K, BX, seed=10).requires_grad_(True)
        sy = _rand(N, K, BY, seed=11).requires_grad_(True)
        total, terms = distillation_loss(sx, sy, t, overlap_mode=mode)
        total.backward()
        grads[mode] = (sx.grad, sy.grad)
    assert 'overlap' in terms
    torch.testing.assert_close(grads['separate'][0], grads['mean'][0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(grads['separate'][1], grads['mean'][1], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('mode', ['mean', 'product', 'confidence'])
def test_distillation_modes_agree_when_teachers_agree(mode):
    sx, sy = _rand(N, K, BX, seed=10), _rand(N, K, BY, seed=11)
    t = _targets(agree=True)
    sep, _ = distillation_loss(sx, sy, t, overlap_mode='separate')
    comb, terms = distillation_loss(sx, sy, t, overlap_mode=mode)
    assert comb.item() == pytest.approx(sep.item(), rel=1e-5)
    assert terms['overlap'].item() > 0


def test_distillation_product_differs_when_teachers_disagree():
    sx, sy = _rand(N, K, BX, seed=10), _rand(N, K, BY, seed=11)
    t = _targets()
    mean, _ = distillation_loss(sx, sy, t, overlap_mode='mean')
    prod, _ = distillation_loss(sx, sy, t, overlap_mode='product')
    assert abs(mean.item() - prod.item()) > 1e-4


def test_distillation_outside_mass_downweights():
    sx, sy = _rand(N, K, BX, seed=10), _rand(N, K, BY, seed=11)
    t = _targets()
    outside = torch.zeros(N, K)
    outside[:, 0] = 1.0  # joint 0 entirely outside the crop for the COCO teacher
    t['coco']['outside_mass'] = outside
    _, terms = distillation_loss(sx, sy, t)
    t2 = _targets()
    t2['coco']['coverage'] = torch.tensor([False, True, True, False, False])
    _, terms2 = distillation_loss(sx, sy, t2)
    assert terms['coco'].item() == pytest.approx(terms2['coco'].item(), rel=1e-6)
    # Per-axis outside mass: half outside on x only scales the x half.
    t3 = _targets()
    t3['coco']['outside_mass'] = torch.stack([torch.full((N, K), 0.5), torch.zeros(N, K)], -1)
    _, terms3 = distillation_loss(sx, sy, t3)
    cov = COCO_COV.float().expand(N, K)
    x_half = kd_loss(sx, sy, t3['coco']['logp_x'], t3['coco']['logp_y'], (0.5 * cov, cov))
    assert terms3['coco'].item() == pytest.approx(0.25 * x_half.item(), rel=1e-6)


def test_distillation_kd_scale_temperature_and_missing_teacher():
    sx, sy = _rand(N, K, BX, seed=10), _rand(N, K, BY, seed=11)
    t = _targets()
    _, base = distillation_loss(sx, sy, t)
    _, half = distillation_loss(sx, sy, t, kd_scale=0.5)
    assert half['gt'].item() == pytest.approx(base['gt'].item())
    assert half['coco'].item() == pytest.approx(0.5 * base['coco'].item(), rel=1e-6)
    _, hot = distillation_loss(sx, sy, t, temperature=2.0)
    ref = kd_loss(sx, sy, t['mpii']['logp_x'], t['mpii']['logp_y'],
                  MPII_COV.float().expand(N, K), temperature=2.0)
    assert hot['mpii'].item() == pytest.approx(0.45 * ref.item(), rel=1e-6)
    del t['mpii']
    total, terms = distillation_loss(sx, sy, t, overlap_mode='product')
    assert set(terms) == {'gt', 'coco'}
    with pytest.raises(ValueError, match='overlap_mode'):
        distillation_loss(sx, sy, t, overlap_mode='median')
    with pytest.raises(ValueError, match=r"no weight for \['coco', 'gt'\]"):
        distillation_loss(sx, sy, t, loss_weights=dict(halpe=1.0))


def test_teachers_are_whatever_the_targets_name():
    """Renamed teachers distil exactly as coco/mpii do; a third teacher covering a subset of the
    union joints joins the overlap mixture on the joints it shares."""
    sx, sy = _rand(N, K, BX, seed=12), _rand(N, K, BY, seed=13)
    t = _targets()
    w = dict(gt=0.3, coco=0.25, mpii=0.45)
    for mode in ('separate', 'confidence', 'product'):
        total, terms = distillation_loss(sx, sy, t, loss_weights=w, overlap_mode=mode)
        renamed = {('left' if k == 'coco' else 'right' if k == 'mpii' else k): v for k, v in t.items()}
        total2, terms2 = distillation_loss(sx, sy, renamed, loss_weights=dict(gt=0.3, left=0.25, right=0.45),
                                           overlap_mode=mode)
        assert total2.item() == pytest.approx(total.item(), rel=1e-6), mode
        assert terms2['left'].item() == pytest.approx(terms['coco'].item(), rel=1e-6)
    # a third teacher: a second COCO-style one on the first 5 joints (the face)
    third = dict(t['coco'])
    third['coverage'] = torch.zeros(K)
    third['coverage'][:5] = 1.0
    three = dict(t, coco2=third)
    _, terms3 = distillation_loss(sx, sy, three, loss_weights=dict(w, coco2=0.2), overlap_mode='confidence')
    assert set(terms3) == {'gt', 'coco', 'mpii', 'coco2', 'overlap'}
    assert terms3['coco2'].item() == 0.0  # its joints are all shared (with coco): only the mixture has them
    _, terms2 = distillation_loss(sx, sy, t, loss_weights=w, overlap_mode='confidence')
    assert terms3['overlap'].item() > terms2['overlap'].item()  # the face joints joined the shared term
    with pytest.raises(ValueError, match=r"no weight for \['coco2'\]"):
        distillation_loss(sx, sy, three, loss_weights=w)


def test_kd_weight_schedule():
    assert kd_weight_schedule(5, 10) == 1.0
    assert kd_weight_schedule(0, 10, decay=True) == 1.0
    assert kd_weight_schedule(5, 10, decay=True) == pytest.approx(0.5)
    assert kd_weight_schedule(10, 10, decay=True) == pytest.approx(0.0)
    assert kd_weight_schedule(3, 4, start=2.0, end=1.0, decay=True) == pytest.approx(1.25)
    assert kd_weight_schedule(20, 10, decay=True) == pytest.approx(0.0)

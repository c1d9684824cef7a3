"""Training losses of the student: SimCC ground truth + logit distillation from two teachers.

Pure torch math, no I/O. All inputs are SimCC vectors shaped (N, K, bins), one tensor per axis.

Two mmpose losses are reproduced (same numbers, own code):

* ``simcc_kl_loss`` = mmpose ``KLDiscretLoss`` (RTMPose head loss, ``beta=10, label_softmax=True``):
  per joint and axis ``KL(softmax(label * label_beta) || softmax(pred * beta))`` averaged over the
  bins, times the joint weight, summed over the batch and the joints, divided by K; x + y.
  Note the batch is *summed*, not averaged: the loss grows with the batch size, exactly as in mmpose.
* ``kd_loss`` = mmpose ``KDLoss`` (DWPose logit distillation): per joint and axis
  ``KL(softmax(teacher * beta) || softmax(student * beta))`` summed over the bins, summed over the
  joints, averaged over the batch, x + y, divided by K. ``beta`` is the student head's loss beta
  (10 for RTMPose). mmpose has no temperature and no T^2 factor and ignores the joint weights; here
  ``temperature`` divides beta (Hinton KD) and the loss is multiplied by T^2 so gradients keep their
  size. With ``temperature=1`` and all weights 1 the value is mmpose's, to float precision.

Teacher targets are log-probabilities over the student's bins (possibly not summing to one: mass
outside the student crop is missing and the cache tails are approximate). Since
``softmax(beta * log_softmax(z)) == softmax(beta * z)``, sharpening the stored log-probabilities
with beta gives exactly the distribution mmpose's KDLoss builds from the raw teacher logits.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

OVERLAP_MODES = ('separate', 'mean', 'product', 'confidence')
COMBINE_MODES = ('mean', 'product', 'confidence')
DEFAULT_LOSS_WEIGHTS = dict(gt=0.3, coco=0.25, mpii=0.45)  # the seed project's preset
GT_KEYS = ('gt_x', 'gt_y', 'gt_weights')


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------
def _check_simcc(name: str, x: torch.Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f'{name}: expected (N, K, bins), got shape {tuple(x.shape)}')


def _kl_per_joint(target_prob: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """KL(target || student) per bin, 0 where the target is 0 (as torch's KLDivLoss)."""
    return torch.xlogy(target_prob, target_prob) - target_prob * student_logp


def _joint_weights(weights, n: int, k: int, ref: torch.Tensor) -> torch.Tensor:
    """(N, K) float32 weights from a tensor, an array or None (= all ones)."""
    if weights is None:
        return torch.ones(n, k, dtype=torch.float32, device=ref.device)
    w = torch.as_tensor(weights, device=ref.device).to(torch.float32)
    try:
        return torch.broadcast_to(w, (n, k))
    except RuntimeError:
        raise ValueError(f'joint weights: expected shape ({n}, {k}), got {tuple(w.shape)}') from None


def _axis_weights(weights, n: int, k: int, ref: torch.Tensor):
    """Weights for the x and y axes: one (N, K) tensor for both, or a pair (w_x, w_y)."""
    if isinstance(weights, (tuple, list)):
        if len(weights) != 2:
            raise ValueError(f'weights: expected (N, K) or a pair (w_x, w_y), got {len(weights)} items')
        return _joint_weights(weights[0], n, k, ref), _joint_weights(weights[1], n, k, ref)
    w = _joint_weights(weights, n, k, ref)
    return w, w


def _kd_axis(student_logits: torch.Tensor, target_logp: torch.Tensor, weights: torch.Tensor,
             scale: float) -> torch.Tensor:
    """One axis of the KD loss with the target already in its final (sharpened) form.

    Sum over bins of KL(target || softmax(student * scale)), times the joint weight,
    summed over joints and batch, divided by N * K (mmpose KDLoss: sum over K, mean over N, / K).
    """
    n, k, _ = student_logits.shape
    student_logp = F.log_softmax(student_logits.float() * scale, dim=-1)
    # Rows with weight 0 may hold anything (a teacher's missing joint): zero them so a NaN there
    # cannot leak into the loss or the gradient.
    target_prob = torch.where(weights.unsqueeze(-1) > 0, target_logp.float().exp(), 0.0)
    kl = _kl_per_joint(target_prob, student_logp).sum(dim=-1)  # (N, K)
    return (kl * weights).sum() / (n * k)


def teacher_target_logp(teacher_logp: torch.Tensor, beta: float = 10.0,
                        temperature: float = 1.0) -> torch.Tensor:
    """The distribution the student is distilled towards: log_softmax(teacher_logp * beta / T).

    Renormalises over the student's bins, so mass outside the crop is dropped here (the caller
    down-weights such joints with (1 - outside_mass)).
    """
    return F.log_softmax(teacher_logp.float() * (beta / temperature), dim=-1)


# --------------------------------------------------------------------------------------------
# the two mmpose losses
# --------------------------------------------------------------------------------------------
def simcc_kl_loss(pred_x: torch.Tensor, pred_y: torch.Tensor, target_x: torch.Tensor,
                  target_y: torch.Tensor, weights, beta: float = 10.0, label_softmax: bool = True,
                  label_beta: float = 10.0, use_target_weight: bool = True,
                  reduction: str = 'mmpose') -> torch.Tensor:
    """Ground-truth SimCC loss, mmpose ``KLDiscretLoss`` semantics.

    pred_*: student logits (N, K, bins); target_*: SimCC Gaussian labels (N, K, bins) as made by
    SimCCLabel(normalize=False); weights: (N, K) keypoint weights (0 for joints the instance's
    dataset does not annotate, invisible, or outside the crop).

    reduction='mmpose': per joint KL averaged over the bins, weighted, summed over N and K, / K
    (the batch is summed, as in mmpose). reduction='batch_mean': KL summed over the bins, weighted,
    summed over N and K, / (N * K) -- the same reduction as ``kd_loss``, so both are in nats per joint.
    """
    for name, t in (('pred_x', pred_x), ('pred_y', pred_y), ('target_x', target_x),
                    ('target_y', target_y)):
        _check_simcc(name, t)
    if reduction not in ('mmpose', 'batch_mean'):
        raise ValueError(f"reduction must be 'mmpose' or 'batch_mean', got {reduction!r}")
    n, k, _ = pred_x.shape
    w = _joint_weights(weights, n, k, pred_x) if use_target_weight else None
    total = pred_x.new_zeros((), dtype=torch.float32)
    for pred, target in ((pred_x, target_x), (pred_y, target_y)):
        if pred.shape != target.shape:
            raise ValueError(f'simcc_kl_loss: prediction {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ in shape')
        student_logp = F.log_softmax(pred.float() * beta, dim=-1)
        label = target.float()
        if label_softmax:
            label = F.softmax(label * label_beta, dim=-1)
        kl = _kl_per_joint(label, student_logp)
        kl = kl.mean(dim=-1) if reduction == 'mmpose' else kl.sum(dim=-1)  # (N, K)
        if w is not None:
            kl = kl * w
        total = total + kl.sum()
    return total / k if reduction == 'mmpose' else total / (n * k)


def kd_loss(student_x: torch.Tensor, student_y: torch.Tensor, teacher_logp_x: torch.Tensor,
            teacher_logp_y: torch.Tensor, weights=None, temperature: float = 1.0,
            beta: float = 10.0) -> torch.Tensor:
    """Logit distillation, mmpose ``KDLoss`` semantics (see module docstring).

    teacher_logp_*: teacher log-probabilities (or logits) over the student's bins (N, K, bins).
    weights: (N, K) per-joint weights, or a pair (w_x, w_y): 0 for joints the teacher does not
    cover; the caller multiplies in (1 - outside_mass). None = all ones (= mmpose).
    Returns T^2 * sum over axes of [sum_{n,k} w * KL_bins(teacher_T || student_T)] / (N * K).
    """
    for name, t in (('student_x', student_x), ('student_y', student_y),
                    ('teacher_logp_x', teacher_logp_x), ('teacher_logp_y', teacher_logp_y)):
        _check_simcc(name, t)
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    n, k, _ = student_x.shape
    w_x, w_y = _axis_weights(weights, n, k, student_x)
    scale = beta / temperature
    loss = student_x.new_zeros((), dtype=torch.float32)
    for student, teacher, w in ((student_x, teacher_logp_x, w_x), (student_y, teacher_logp_y, w_y)):
        if student.shape != teacher.shape:
            raise ValueError(f'kd_loss: student {tuple(student.shape)} and teacher '
                             f'{tuple(teacher.shape)} differ in shape')
        loss = loss + _kd_axis(student, teacher_target_logp(teacher.detach(), beta, temperature),
                               w, scale)
    return loss * temperature ** 2


# --------------------------------------------------------------------------------------------
# two teachers on the same joint
# --------------------------------------------------------------------------------------------
def combine_teachers(logp_a: torch.Tensor, logp_b: torch.Tensor, weight_a=1.0, weight_b=1.0,
                     mode: str = 'mean') -> torch.Tensor:
    """One distribution from two teachers' distributions over the same bins (..., bins).

    Inputs are log-probabilities, renormalised over the bins first. weight_a/b: scalars or tensors
    broadcastable to logp[..., 0] (per joint), >= 0; only their ratio matters.
      'mean'       log of the weighted mixture  alpha_a p_a + alpha_b p_b;
      'product'    log-linear pool: normalised p_a^alpha_a p_b^alpha_b (weighted geometric mean);
      'confidence' mixture with per-row weights proportional to weight_t * max(p_t) (a teacher
                   that is sure of the joint counts more).
    Returns normalised log-probabilities. combine_many does the same for any number of teachers.
    """
    if logp_a.shape != logp_b.shape:
        raise ValueError(f'combine_teachers: shapes differ: {tuple(logp_a.shape)} vs {tuple(logp_b.shape)}')
    return combine_many([logp_a, logp_b], [weight_a, weight_b], mode)


def combine_many(logps: list, weights: list, mode: str = 'mean') -> torch.Tensor:
    """combine_teachers for T >= 1 teachers: `logps` T tensors (..., bins), `weights` T scalars or
    tensors broadcastable to logp[..., 0], >= 0 (uniform where they are all 0)."""
    if mode not in COMBINE_MODES:
        raise ValueError(f'combine_teachers: mode must be one of {COMBINE_MODES}, got {mode!r}')
    ls = [F.log_softmax(lp.float(), dim=-1) for lp in logps]
    shape = ls[0].shape[:-1]
    ws = []
    for lt, w in zip(ls, weights):
        w = torch.broadcast_to(torch.as_tensor(w, dtype=torch.float32, device=lt.device), shape)
        if (w < 0).any():
            raise ValueError('combine_teachers: teacher weights must be >= 0')
        ws.append(w * lt.amax(dim=-1).exp() if mode == 'confidence' else w)
    w = torch.stack(ws, dim=-1).unsqueeze(-2)  # (..., 1, T)
    total = w.sum(dim=-1, keepdim=True)
    alpha = torch.where(total > 0, w / total.clamp_min(1e-30), torch.full_like(w, 1.0 / len(ls)))
    stacked = torch.stack(ls, dim=-1)  # (..., bins, T)
    if mode == 'product':
        return F.log_softmax((alpha * stacked).sum(dim=-1), dim=-1)
    # Mixture in log space; log(0) = -inf drops a teacher with weight 0 (logsumexp copes).
    return torch.logsumexp(stacked + alpha.log(), dim=-1)


# --------------------------------------------------------------------------------------------
# the student's total loss
# --------------------------------------------------------------------------------------------
def _teacher_axis_weights(entry: Mapping, n: int, k: int, ref: torch.Tensor):
    """Per-axis (N, K) weights of one teacher: coverage * (1 - outside_mass) * extra weights."""
    coverage = torch.as_tensor(entry['coverage'], device=ref.device).to(torch.float32)
    coverage = torch.broadcast_to(coverage, (n, k))
    base = coverage * _joint_weights(entry.get('weights'), n, k, ref)
    outside = entry.get('outside_mass')
    if outside is None:
        return base, base
    outside = torch.as_tensor(outside, device=ref.device).to(torch.float32)
    if outside.shape == (n, k):
        outside = torch.stack([outside, outside], dim=-1)
    if outside.shape != (n, k, 2):
        raise ValueError(f'outside_mass: expected (N, K) or (N, K, 2) = ({n}, {k}[, 2]), '
                         f'got {tuple(outside.shape)}')
    inside = (1.0 - outside).clamp(0.0, 1.0)
    return base * inside[..., 0], base * inside[..., 1]


def distillation_loss(student_x: torch.Tensor, student_y: torch.Tensor, targets: Mapping,
                      loss_weights: Mapping | None = None, temperature: float = 1.0,
                      overlap_mode: str = 'separate', beta: float = 10.0, kd_scale: float = 1.0,
                      gt_reduction: str = 'mmpose'):
    """Total training loss of the student (K joints: the run's union).

    targets:
      'gt_x', 'gt_y'   (N, K, bins) SimCC Gaussian labels; 'gt_weights' (N, K) keypoint weights
                       already zeroed on joints the instance's dataset does not annotate.
      'coco', 'mpii'   (each optional) dict(logp_x (N,K,Bx), logp_y (N,K,By): teacher log-probs
                       over the student's bins; coverage (K,) or (N,K): joints the teacher
                       predicts; outside_mass (N,K) or (N,K,2) [x, y], optional: teacher mass outside
                       the student crop; weights (N,K), optional: extra per-joint weights).
    loss_weights: dict(gt=, <teacher>=, ...): a weight for ground truth and one for every teacher in
                  `targets` (default the seed project's gt 0.3, coco 0.25, mpii 0.45); a teacher
                  without a weight is an error, never a silent zero.
    kd_scale: multiplies every teacher term (e.g. ``kd_weight_schedule``).

    Terms (each already multiplied by its weight; total = their sum):
      'gt'       w_gt * simcc_kl_loss (mmpose KLDiscretLoss, beta, label_softmax, label_beta=10).
      'coco'     w_coco * kd_loss of the COCO teacher on its joints (overlap_mode='separate': all its
                 joints; otherwise only the joints the MPII teacher does not also cover).
      'mpii'     the same for the MPII teacher.
      'overlap'  (combining modes only) KD towards one target built by ``combine_many`` from the
                 sharpened distributions of the teachers that cover a joint, on joints two or more
                 cover, with mixing weights w_t * r_t (r_t = the teacher's per-joint weight) and joint
                 weight sum_t w_t * r_t -- the total weight 'separate' gives that joint.
    Note: 'separate' and 'mean' give identical gradients (sum_t w_t KL(p_t||q) and
    (sum_t w_t) KL(mix||q) differ by a constant in q); they differ only in the reported value.
    """
    if overlap_mode not in OVERLAP_MODES:
        raise ValueError(f'overlap_mode must be one of {OVERLAP_MODES}, got {overlap_mode!r}')
    _check_simcc('student_x', student_x)
    _check_simcc('student_y', student_y)
    weights = dict(DEFAULT_LOSS_WEIGHTS if loss_weights is None else loss_weights)
    names = [key for key in targets if key not in GT_KEYS]  # every other entry is a teacher's
    missing = [t for t in names + ['gt'] if t not in weights]
    if missing:
        raise ValueError(f'loss_weights: no weight for {missing} (has {sorted(weights)})')
    n, k, _ = student_x.shape
    scale = beta / temperature
    zero = student_x.new_zeros((), dtype=torch.float32)
    terms = {}

    # Ground truth on the joints the instance's dataset annotates.
    if 'gt_x' in targets:
        terms['gt'] = weights['gt'] * simcc_kl_loss(
            student_x, student_y, targets['gt_x'], targets['gt_y'], targets['gt_weights'],
            beta=beta, label_softmax=True, label_beta=10.0, reduction=gt_reduction)

    # Each teacher's sharpened target and per-axis joint weights.
    teachers = {}
    for name in names:
        entry = targets[name]
        for key in ('logp_x', 'logp_y', 'coverage'):
            if key not in entry:
                raise ValueError(f"targets['{name}'] lacks '{key}'")
        r_x, r_y = _teacher_axis_weights(entry, n, k, student_x)
        teachers[name] = dict(
            x=teacher_target_logp(entry['logp_x'].detach(), beta, temperature),
            y=teacher_target_logp(entry['logp_y'].detach(), beta, temperature),
            r_x=r_x, r_y=r_y,
            coverage=torch.broadcast_to(torch.as_tensor(entry['coverage'], device=student_x.device)
                                        .to(torch.float32), (n, k)))

    t2 = temperature ** 2
    shared = torch.zeros(n, k, device=student_x.device)  # joints two or more teachers cover
    if overlap_mode != 'separate' and len(teachers) > 1:
        shared = (sum(t['coverage'] for t in teachers.values()) > 1).to(torch.float32)
    for name, t in teachers.items():
        only = 1.0 - shared  # joints where this teacher speaks alone
        loss = _kd_axis(student_x, t['x'], t['r_x'] * only, scale) + \
            _kd_axis(student_y, t['y'], t['r_y'] * only, scale)
        terms[name] = kd_scale * weights[name] * t2 * loss

    if shared.any():
        loss = zero
        for axis, student in (('x', student_x), ('y', student_y)):
            mix = [weights[name] * t['r_' + axis] for name, t in teachers.items()]  # 0 where not covered
            target = combine_many([t[axis] for t in teachers.values()], mix, mode=overlap_mode)
            loss = loss + _kd_axis(student, target, sum(mix) * shared, scale)
        terms['overlap'] = kd_scale * t2 * loss

    total = sum(terms.values(), zero)
    return total, terms


def kd_weight_schedule(epoch: float, total_epochs: float, start: float = 1.0, end: float = 0.0,
                       decay: bool = False) -> float:
    """Weight of the distillation terms at an epoch (0-based).

    decay=False: constant ``start``. decay=True: linear from ``start`` at epoch 0 to ``end`` at
    ``total_epochs`` (DWPose's distiller multiplies its KD loss by 1 - epoch / max_epochs).
    """
    if not decay:
        return float(start)
    if total_epochs <= 0:
        raise ValueError(f'total_epochs must be > 0, got {total_epochs}')
    progress = min(max(epoch / total_epochs, 0.0), 1.0)
    return float(start + (end - start) * progress)


__all__ = ['simcc_kl_loss', 'kd_loss', 'combine_teachers', 'combine_many', 'distillation_loss',
           'kd_weight_schedule', 'teacher_target_logp', 'OVERLAP_MODES', 'DEFAULT_LOSS_WEIGHTS']

"""SimCC codec (mmpose ``SimCCLabel`` semantics) and the map of teacher SimCC bins onto a student's bins.

Bins: pixel coordinate ``p`` of an input of width ``w`` lives in bin ``round(p * split_ratio)`` of
``w * split_ratio`` bins; decoding divides the arg-max bin by ``split_ratio`` again.

Only the configuration RTMPose uses is implemented: Gaussian smoothing, ``normalize=False``,
``use_dark=False``, no label smoothing, no decoded visibility. Anything else is refused.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor


class SimCCCodec:
    """Encode keypoints (input-image pixels) into per-axis 1-D Gaussian SimCC targets and decode
    SimCC vectors back, bit-compatible with mmpose's ``SimCCLabel(smoothing_type='gaussian',
    normalize=False, use_dark=False)``."""

    def __init__(self, input_size: Sequence[int], sigma: float | Sequence[float] = 6.0,
                 simcc_split_ratio: float = 2.0):
        if len(input_size) != 2:
            raise ValueError(f'input_size must be (w, h), got {input_size!r}')
        self.input_size = (int(input_size[0]), int(input_size[1]))
        sigma = (sigma, sigma) if np.isscalar(sigma) else tuple(sigma)
        if len(sigma) != 2 or min(sigma) <= 0:
            raise ValueError(f'sigma must be a positive number or (sx, sy), got {sigma!r}')
        self.sigma = np.asarray(sigma, dtype=np.float64)
        self.simcc_split_ratio = float(simcc_split_ratio)
        # mmpose: np.around(w * ratio) bins for encoding, int(w * ratio) logits in the head; the two
        # agree for every integer size with ratio 2.0 and are checked equal in from_config users.
        self.num_bins_x = int(np.around(self.input_size[0] * self.simcc_split_ratio))
        self.num_bins_y = int(np.around(self.input_size[1] * self.simcc_split_ratio))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> 'SimCCCodec':
        """Build from an mmpose codec dict (``type='SimCCLabel'``)."""
        cfg = dict(cfg)
        if cfg.get('type', 'SimCCLabel') != 'SimCCLabel':
            raise ValueError(f'codec type must be SimCCLabel, got {cfg.get("type")!r}')
        unsupported = {
            'smoothing_type': ('gaussian',), 'normalize': (False,), 'use_dark': (False,),
            'label_smooth_weight': (0, 0.0), 'decode_visibility': (False,)}
        defaults = {'smoothing_type': 'gaussian', 'normalize': True, 'use_dark': False,
                    'label_smooth_weight': 0.0, 'decode_visibility': False}
        for key, allowed in unsupported.items():
            value = cfg.get(key, defaults[key])
            if value not in allowed:
                raise ValueError(f'codec {key}={value!r} is not supported (only {allowed[0]!r})')
        if 'input_size' not in cfg:
            raise ValueError('codec has no input_size')
        return cls(cfg['input_size'], cfg.get('sigma', 6.0), cfg.get('simcc_split_ratio', 2.0))

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict:
        """keypoints (N, K, 2) input pixels, keypoints_visible (N, K) -> dict of
        keypoint_x_labels (N, K, Wx) float32, keypoint_y_labels (N, K, Wy) float32,
        keypoint_weights (N, K) (a copy of keypoints_visible, zeroed where the label is dropped).

        As in mmpose, a joint with visibility < 0.5 gets all-zero labels (its weight keeps the
        visibility value), and a visible joint whose 3-sigma Gaussian support lies entirely outside
        the input on either axis gets weight 0 and zero labels. A joint just outside the input
        (within 3 sigma) keeps weight 1 and a truncated Gaussian, exactly like mmpose.
        """
        keypoints = np.asarray(keypoints)
        if keypoints.ndim != 3 or keypoints.shape[-1] < 2:
            raise ValueError(f'keypoints must be (N, K, 2), got {keypoints.shape}')
        if keypoints_visible is None:
            keypoints_visible = np.ones(keypoints.shape[:2], dtype=np.float32)
        keypoints_visible = np.asarray(keypoints_visible)
        if keypoints_visible.shape != keypoints.shape[:2]:
            raise ValueError(f'keypoints_visible {keypoints_visible.shape} does not match '
                             f'keypoints {keypoints.shape}')
        n, k = keypoints.shape[:2]
        W, H = self.num_bins_x, self.num_bins_y
        xy = keypoints[..., :2]
        finite = np.isfinite(xy).all(-1)
        # Bin centres: round half to even, as mmpose's np.around.
        mu = np.around(np.where(finite[..., None], xy, 0) * self.simcc_split_ratio).astype(np.int64)
        weights = keypoints_visible.copy()

        radius = self.sigma * 3
        left, top = (mu - radius).transpose(2, 0, 1)  # float64, as mmpose
        right, bottom = (mu + radius + 1).transpose(2, 0, 1)
        outside = (left >= W) | (top >= H) | (right < 0) | (bottom < 0) | ~finite
        labelled = keypoints_visible >= 0.5
        weights[labelled & outside] = 0
        keep = labelled & ~outside

        # float32 bin grid minus int64 centre promotes to float64 (numpy 2 rules, as mmpose runs).
        x = np.arange(0, W, 1, dtype=np.float32).astype(np.float64)
        y = np.arange(0, H, 1, dtype=np.float32).astype(np.float64)
        target_x = np.exp(-((x[None, None, :] - mu[..., 0:1]) ** 2) / (2 * self.sigma[0] ** 2))
        target_y = np.exp(-((y[None, None, :] - mu[..., 1:2]) ** 2) / (2 * self.sigma[1] ** 2))
        target_x = np.where(keep[..., None], target_x, 0).astype(np.float32).reshape(n, k, W)
        target_y = np.where(keep[..., None], target_y, 0).astype(np.float32).reshape(n, k, H)
        return dict(keypoint_x_labels=target_x, keypoint_y_labels=target_y, keypoint_weights=weights)

    def decode(self, simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SimCC vectors (N, K, Wx), (N, K, Wy) (or without N) -> keypoints (N, K, 2) float32 in input
        pixels and scores (N, K) = min(max_x, max_y). Joints whose score is <= 0 decode to -1 bin
        (-1 / split_ratio pixels), as mmpose."""
        keypoints, scores = get_simcc_maximum(np.asarray(simcc_x), np.asarray(simcc_y))
        if keypoints.ndim == 2:
            keypoints, scores = keypoints[None], scores[None]
        keypoints /= self.simcc_split_ratio
        return keypoints, scores


def get_simcc_maximum(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max bins and their values: (K, W) or (N, K, W) -> locs (..., 2) float32 bins, vals (...).
    The value is the smaller of the two axis maxima; a value <= 0 marks the location -1."""
    if simcc_x.ndim not in (2, 3) or simcc_x.ndim != simcc_y.ndim:
        raise ValueError(f'simcc_x {simcc_x.shape} and simcc_y {simcc_y.shape} must both be 2-D or 3-D')
    lead = simcc_x.shape[:-1]
    sx = simcc_x.reshape(-1, simcc_x.shape[-1])
    sy = simcc_y.reshape(-1, simcc_y.shape[-1])
    locs = np.stack((np.argmax(sx, axis=1), np.argmax(sy, axis=1)), axis=-1).astype(np.float32)
    vals = np.minimum(np.amax(sx, axis=1), np.amax(sy, axis=1))
    locs[vals <= 0.0] = -1
    return locs.reshape(*lead, 2), vals.reshape(lead)


def simcc_to_keypoints(simcc_x: Tensor, simcc_y: Tensor,
                       simcc_split_ratio: float) -> tuple[Tensor, Tensor]:
    """Torch version of SimCCCodec.decode for batched evaluation on any device:
    (..., K, Wx), (..., K, Wy) -> keypoints (..., K, 2) input pixels, scores (..., K)."""
    max_x, loc_x = simcc_x.max(dim=-1)
    max_y, loc_y = simcc_y.max(dim=-1)
    scores = torch.minimum(max_x, max_y)
    locs = torch.stack((loc_x, loc_y), dim=-1).to(torch.float32)
    locs = torch.where((scores <= 0)[..., None], torch.full_like(locs, -1.0), locs)
    return locs / simcc_split_ratio, scores


def map_teacher_logits(logits: Tensor, a, b, n_student: int) -> tuple[Tensor, Tensor]:
    """Express a teacher's SimCC distribution on one axis in a student's bins.

    ``teacher_bin = a * student_bin + b`` (see data.geometry.teacher_to_student_bins; a > 0). a and b
    are numbers, or (N,) arrays/tensors with one map per row of ``logits`` (N, ..., bins).

    Returns
      student_logits (..., n_student) float32: the teacher's log-softmax sampled at the teacher
        positions ``a*i + b``. With ``a == 1`` and integer ``b`` this is an exact gather; otherwise
        the log-probabilities of the two neighbouring teacher bins are linearly interpolated.
        Positions within half a bin of the teacher's range take the edge value; student bins the
        teacher crop does not reach (its native crop is smaller along that axis) get -inf: the
        teacher puts no mass where it cannot see. The values are log-densities per teacher bin, not
        renormalised: apply a softmax over the last axis to get the teacher's distribution
        restricted to the student's crop.
      outside_mass (...,) float32: the teacher probability mass that lies outside the student's bins.
        Student bin i covers teacher positions [a*(i-1/2)+b, a*(i+1/2)+b]; teacher bin j covers
        [j-1/2, j+1/2]; each teacher bin contributes its probability times the fraction of it outside
        the union [b - a/2, b + a*(n_student - 1/2)]. For a == 1 and integer b this is exactly the
        mass of the teacher bins that no student bin gathers.

    The computation is differentiable but is meant for targets (no_grad in the callers).
    """
    if n_student < 1:
        raise ValueError(f'n_student must be >= 1, got {n_student}')
    device = logits.device
    a = torch.as_tensor(a, dtype=torch.float64, device=device)
    b = torch.as_tensor(b, dtype=torch.float64, device=device)
    if a.shape != b.shape or a.dim() > 1 or (a.dim() == 1 and a.shape[0] != logits.shape[0]):
        raise ValueError(f'bin map a, b: numbers or ({logits.shape[0]},) per row, got shapes '
                         f'{tuple(a.shape)}, {tuple(b.shape)}')
    if not bool((a > 0).all()):
        raise ValueError(f'bin map scale a must be > 0, got {a.min().item()}')
    lead = (-1,) + (1,) * (logits.dim() - 1) if a.dim() == 1 else (1,) * logits.dim()
    a, b = a.reshape(lead), b.reshape(lead)  # broadcast over (N, ..., bins)
    n_teacher = logits.shape[-1]
    log_probs = torch.log_softmax(logits.to(torch.float32), dim=-1)
    pos = torch.arange(n_student, device=device, dtype=torch.float64) * a + b
    seen = (pos >= -0.5) & (pos <= n_teacher - 0.5)
    pos = pos.clamp(0, n_teacher - 1)
    lo = pos.floor().to(torch.long)
    hi = (lo + 1).clamp(max=n_teacher - 1)
    frac = (pos - lo.to(torch.float64)).to(torch.float32)
    shape = log_probs.shape[:-1] + (n_student,)
    at_lo = log_probs.gather(-1, lo.expand(shape))
    at_hi = log_probs.gather(-1, hi.expand(shape))
    # frac == 0 (integer shifts) keeps the gathered value bit-exact
    student = torch.where(frac == 0, at_lo, torch.lerp(at_lo, at_hi, frac))
    student = torch.where(seen, student, torch.tensor(float('-inf'), device=device))

    # Fraction of each teacher bin inside the student's span, in float64 for exact edges.
    span_lo, span_hi = b - a / 2, b + a * (n_student - 0.5)
    centres = torch.arange(n_teacher, device=device, dtype=torch.float64)
    inside = torch.clamp(torch.minimum(centres + 0.5, span_hi) - torch.maximum(centres - 0.5, span_lo),
                         min=0.0, max=1.0)
    outside_frac = (1.0 - inside).to(torch.float32)
    outside_mass = (log_probs.exp() * outside_frac).sum(-1)
    return student, outside_mass


def mirror_simcc(simcc_x, simcc_y, flip_indices):
    """SimCC rows (..., K, Bx), (..., K, By) of a crop -> the rows of its mirror (u -> W - u in crop pixels,
    data.views.mirror_matrix), left and right joints swapped (`flip_indices`, the rows' own joint order).

    Bin b holds pixel b / split, so the mirror sends bin b to Bx - b: the x rows reversed and moved one
    bin up (mmpose's flip_vectors reverses only, which is the mirror u -> W - 1/split - u). Bin 0 of
    the result would come from bin Bx, just outside the crop; it repeats bin 1. y only swaps joints.
    Works on numpy arrays and torch tensors alike."""
    idx = np.asarray(flip_indices)
    if isinstance(simcc_x, Tensor):
        rev = simcc_x[..., torch.as_tensor(idx, device=simcc_x.device), :].flip(-1)
        x = torch.cat([rev[..., :1], rev[..., :-1]], dim=-1)
        return x, simcc_y[..., torch.as_tensor(idx, device=simcc_y.device), :]
    rev = np.asarray(simcc_x)[..., idx, :][..., ::-1]
    return np.concatenate([rev[..., :1], rev[..., :-1]], axis=-1), np.asarray(simcc_y)[..., idx, :]

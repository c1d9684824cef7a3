"""Views: the random geometric augmentation of one instance, drawn once, stored as a small record,
and replayed into a crop for any input size.

A view record is a float32 vector over VIEW_FIELDS. Its numbers are the parameters of RTMPose's
training pipeline (mmpose 1.3): RandomFlip -> RandomHalfBody -> RandomBBoxTransform -> TopdownAffine.
- flip: 1 if the view is mirrored.
- half_body, hb_cx, hb_cy, hb_w, hb_h: the RandomHalfBody box (centre and padded size, in original image
  pixels) when half_body is 1; zeros otherwise.
- scale, rotation (degrees), shift_x, shift_y: RandomBBoxTransform's factors, with mmpose's meaning:
  they act in the image as RandomFlip left it, so for a flipped view the rotation and the x shift are
  mirrored when expressed in the original image (see `view_geometry`). With this, replaying a record
  gives the crop mmpose makes for the same random numbers.
Randomness is counter-based: the numbers of (seed, dataset_index, instance_key, view_index) come from
Philox4x64-10 keyed by `seed` at counter (block, view_index, instance_key, dataset_index), so a row
drawn alone equals the same row drawn in any batch, on any machine. `_philox_raw` reproduces
numpy's np.random.Philox(key=seed, counter=[0, view, key, dataset]).random_raw() word for word
(vectorised over rows).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.special import ndtr, ndtri

from data.geometry import (bbox_xyxy2cs, compose_affine, fix_aspect_ratio, flip_matrix, get_warp_matrix,
                           transform_points)
from data.skeletons import Skeleton

VIEW_FIELDS = ('flip', 'scale', 'rotation', 'shift_x', 'shift_y', 'half_body', 'hb_cx', 'hb_cy', 'hb_w', 'hb_h')
F = {name: i for i, name in enumerate(VIEW_FIELDS)}
NUM_VIEW_FIELDS = len(VIEW_FIELDS)

BBOX_PADDING = 1.25  # GetBBoxCenterScale


@dataclass(frozen=True)
class ViewPolicy:
    """Parameters of RandomFlip, RandomHalfBody and RandomBBoxTransform (mmpose names)."""
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    min_total_keypoints: int = 9
    min_upper_keypoints: int = 2
    min_lower_keypoints: int = 3
    half_body_padding: float = 1.5
    upper_prioritized_prob: float = 0.7
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_factor: tuple[float, float] = (0.5, 1.5)
    scale_prob: float = 1.0
    rotate_factor: float = 80.0
    rotate_prob: float = 0.6


POLICIES = {
    # RTMPose stage 1 (rtmpose-s_8xb256-420e_coco-256x192 train_pipeline)
    'main': ViewPolicy(scale_factor=(0.6, 1.4), rotate_factor=80.0),
    # RTMPose stage 2 (train_pipeline_stage2)
    'final': ViewPolicy(shift_factor=0.0, scale_factor=(0.75, 1.25), rotate_factor=60.0),
    # 'final' with a scale range that reaches the MPII box's framing in a 3:4 crop (a person spans a
    # median 0.55 of it against 0.77 in a COCO box: scale 1.4); measured for the COCO demo teacher, not
    # shipped (docs/results.md: +4 to +7 on the other twin, seeds 5 apart on its own)
    'wide': ViewPolicy(shift_factor=0.0, scale_factor=(0.75, 1.75), rotate_factor=60.0),
    'none': ViewPolicy(flip_prob=0.0, half_body_prob=0.0, shift_prob=0.0, scale_factor=(1.0, 1.0),
                       scale_prob=0.0, rotate_prob=0.0),
}


def get_policy(policy: ViewPolicy | str) -> ViewPolicy:
    if isinstance(policy, ViewPolicy):
        return policy
    try:
        return POLICIES[policy]
    except KeyError:
        raise KeyError(f'unknown view policy {policy!r}; known: {sorted(POLICIES)}') from None


def identity_view(flip: bool = False) -> np.ndarray:
    """The un-augmented crop (evaluation), or its mirror (`flip`: the flip test's second crop)."""
    view = np.zeros(NUM_VIEW_FIELDS, np.float32)
    view[F['scale']] = 1.0
    view[F['flip']] = float(flip)
    return view


# ---------------------------------------------------------------- counter-based random numbers
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_PHILOX_M = (np.uint64(0xD2E7470EE14C6C93), np.uint64(0xCA5A826395121157))
_PHILOX_W = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBB67AE8584CAA73B))


def _mulhilo(a: np.ndarray, b: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """High and low 64-bit words of the 128-bit product a * b, from 32-bit halves."""
    al, ah = a & _M32, a >> _S32
    bl, bh = b & _M32, b >> _S32
    p0, p1, p2, p3 = al * bl, al * bh, ah * bl, ah * bh
    mid = (p0 >> _S32) + (p1 & _M32) + (p2 & _M32)
    return p3 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32), a * b


def _philox4x64_10(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = k0 + _PHILOX_W[0], k1 + _PHILOX_W[1]
        hi0, lo0 = _mulhilo(c0, _PHILOX_M[0])
        hi1, lo1 = _mulhilo(c2, _PHILOX_M[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def _philox_raw(seed: int, counters: np.ndarray, n_words: int) -> np.ndarray:
    """(R, n_words) uint64: for each row r, np.random.Philox(key=seed, counter=counters[r]).random_raw(n_words)
    (numpy increments the low counter word before each 4-word block; the rows' low words must be 0)."""
    seed = int(seed)
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f'view seed must be in [0, 2**64), got {seed}')
    counters = np.asarray(counters, dtype=np.uint64)
    rows = counters.shape[0]
    key = (np.uint64(seed), np.uint64(0))
    blocks = []
    with np.errstate(over='ignore'):
        for b in range(-(-n_words // 4)):
            ctr = (counters[:, 0] + np.uint64(b + 1), counters[:, 1], counters[:, 2], counters[:, 3])
            blocks.append(np.stack(_philox4x64_10(ctr, key), axis=1))
    return np.concatenate(blocks, axis=1)[:, :n_words].reshape(rows, n_words)


def _uniforms(raw: np.ndarray) -> np.ndarray:
    """uint64 words -> float64 uniforms in [0, 1) (53-bit, as numpy's next_double)."""
    return (raw >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


_TN_LO, _TN_HI = float(ndtr(-1.0)), float(ndtr(1.0))


def _truncnorm(u: np.ndarray) -> np.ndarray:
    """Standard normal truncated to [-1, 1] (scipy truncnorm(-1, 1), as mmpose) by the inverse CDF, float32."""
    return ndtri(_TN_LO + u * (_TN_HI - _TN_LO)).astype(np.float32)


# u columns used per (view, instance)
_U_FLIP, _U_HB, _U_HB_UPPER, _U_TN, _U_SHIFT, _U_SCALE, _U_ROT = 0, 1, 2, slice(3, 7), 7, 8, 9
_N_UNIFORMS = 10


def _half_body_boxes(keypoints, visible, apply, prefer_upper, policy: ViewPolicy, upper: np.ndarray):
    """RandomHalfBody for rows (R,): which rows get a half-body box and its centre/scale (float32).
    `upper` (K,) bool: the skeleton's upper-body joints."""
    vis = visible > 0
    up_valid = vis & upper
    lo_valid = vis & ~upper
    n_up, n_lo = up_valid.sum(1), lo_valid.sum(1)
    eligible = apply & (vis.sum(1) >= policy.min_total_keypoints)
    up_ok = n_up >= policy.min_upper_keypoints
    lo_ok = n_lo >= policy.min_lower_keypoints
    use_upper = np.where(up_ok & lo_ok, prefer_upper, up_ok)
    eligible &= up_ok | lo_ok
    sel = np.where(use_upper[:, None], up_valid, lo_valid) & eligible[:, None]
    kp = keypoints.astype(np.float32)
    count = np.maximum(sel.sum(1), 1).astype(np.float32)
    center = (np.where(sel[..., None], kp, 0).sum(1) / count[:, None]).astype(np.float32)
    lo = np.where(sel[..., None], kp, np.inf).min(1)
    hi = np.where(sel[..., None], kp, -np.inf).max(1)
    scale = np.where(eligible[:, None], hi - lo, 0).astype(np.float32) * np.float32(policy.half_body_padding)
    # A box with no extent (all chosen joints at one point) has no crop; keep the full box then.
    eligible &= scale.max(1) > 0
    return eligible, center, scale


def draw_views(seed: int, dataset_index, instance_keys, n_views: int, keypoints, visible, bbox,
               policy: ViewPolicy | str = 'main', first_view: int = 1, *, skeleton: Skeleton) -> np.ndarray:
    """(n_views, N, len(VIEW_FIELDS)) float32 view records, all drawn under `policy` (none is the
    un-augmented crop unless the policy draws it, as 'none' does).

    View v of the result has the view index `first_view + v` in the random counter, so the first V
    views of a draw of V' > V views are the V views of a draw of V: a cache of 8 views holds the
    caches of 1, 2 and 4. Stages of a schedule draw from disjoint index ranges (`stage_first_view`).
    dataset_index: int or (N,) ints; instance_keys: (N,) int64; keypoints (N, K, 2) and visible
    (N, K) of `skeleton`'s joints in image pixels (used by the half-body box); bbox (N, 4) (only its row
    count is used: the box itself enters at replay time).
    """
    policy = get_policy(policy)
    keys = np.asarray(instance_keys).astype(np.int64).reshape(-1)
    n = keys.shape[0]
    keypoints = np.asarray(keypoints, np.float32).reshape(n, -1, 2)
    visible = np.asarray(visible, np.float32).reshape(n, -1)
    if keypoints.shape[1] != skeleton.num_joints:
        raise ValueError(f'draw_views: keypoints have {keypoints.shape[1]} joints, skeleton {skeleton.name!r} '
                         f'{skeleton.num_joints}')
    if np.asarray(bbox).reshape(-1, 4).shape[0] != n:
        raise ValueError(f'draw_views: {n} instance keys but bbox has shape {np.shape(bbox)}')
    dsets = np.broadcast_to(np.asarray(dataset_index, np.int64), (n,))
    if (dsets < 0).any():
        raise ValueError('draw_views: dataset_index must be >= 0')
    if first_view < 0:
        raise ValueError(f'draw_views: first_view must be >= 0, got {first_view}')
    out = np.zeros((n_views, n, NUM_VIEW_FIELDS), np.float32)
    out[..., F['scale']] = 1.0
    if n_views < 1 or n == 0:
        return out

    v_idx = np.repeat(np.arange(first_view, first_view + n_views, dtype=np.int64), n)  # rows ordered (view, instance)
    i_idx = np.tile(np.arange(n), n_views)
    counters = np.stack([np.zeros_like(v_idx), v_idx, keys[i_idx], dsets[i_idx]], axis=1).view(np.uint64)
    u = _uniforms(_philox_raw(seed, counters, _N_UNIFORMS))

    rec = np.zeros((len(v_idx), NUM_VIEW_FIELDS), np.float32)
    rec[:, F['flip']] = u[:, _U_FLIP] < policy.flip_prob

    hb, hb_center, hb_scale = _half_body_boxes(
        keypoints[i_idx], visible[i_idx], u[:, _U_HB] <= policy.half_body_prob,
        u[:, _U_HB_UPPER] < policy.upper_prioritized_prob, policy, skeleton.upper_body)
    rec[:, F['half_body']] = hb
    rec[hb, F['hb_cx']:F['hb_cy'] + 1] = hb_center[hb]
    rec[hb, F['hb_w']:F['hb_h'] + 1] = hb_scale[hb]

    tn = _truncnorm(u[:, _U_TN])  # offset x, offset y, scale, rotation (mmpose's column order)
    shift = np.where((u[:, _U_SHIFT] < policy.shift_prob)[:, None], tn[:, :2] * np.float32(policy.shift_factor), 0)
    s_min, s_max = policy.scale_factor
    scale = tn[:, 2] * np.float32((s_max - s_min) * 0.5) + np.float32((s_max + s_min) * 0.5)
    scale = np.where(u[:, _U_SCALE] < policy.scale_prob, scale, 1)
    rot = np.where(u[:, _U_ROT] < policy.rotate_prob, tn[:, 3] * np.float32(policy.rotate_factor), 0)
    rec[:, F['shift_x']:F['shift_y'] + 1] = shift
    rec[:, F['scale']] = scale
    rec[:, F['rotation']] = rot
    out[:] = rec.reshape(n_views, n, NUM_VIEW_FIELDS)
    return out


def stage_first_view(stage: int) -> int:
    """The first view index of a schedule stage's draws (stage 0: 1, stage 1: 1 + 1000, ...). Views of
    different stages never share random numbers, and index 0 (once the un-augmented view) is unused."""
    return 1 + 1000 * int(stage)


def mirror_matrix(M: np.ndarray, input_size) -> np.ndarray:
    """A crop's warp matrix mirrored in crop space (u -> W - u, the flip of `flip_matrix`): the train-time
    flip of a replayed view and the flip test. Its SimCC rows are the originals' mirrored by
    teachers.simcc.mirror_simcc, exactly, and the teacher-to-student bin map still holds (data.geometry)."""
    return compose_affine(flip_matrix(float(input_size[0])), M)


# ---------------------------------------------------------------- replay
def view_box(bbox, view):
    """(center (2,), scale (2,), rot (deg), flip (bool)) of a view's box before any aspect fix.

    mmpose order: the box (padding 1.25, or the half-body box), then RandomBBoxTransform's shift
    (in units of that box) and scale factor; the aspect ratio is fixed last, per input size
    (TopdownAffine), so every model sees its own native crop of this one box.
    """
    view = np.asarray(view, np.float32)
    if view.shape != (NUM_VIEW_FIELDS,):
        raise ValueError(f'view_geometry: view must have shape ({NUM_VIEW_FIELDS},), got {view.shape}')
    flip = bool(view[F['flip']] > 0)
    if view[F['half_body']] > 0:
        center = view[[F['hb_cx'], F['hb_cy']]].copy()
        scale = view[[F['hb_w'], F['hb_h']]].copy()
    else:
        center, scale = bbox_xyxy2cs(np.asarray(bbox, np.float32).reshape(4), BBOX_PADDING)
    offset = view[[F['shift_x'], F['shift_y']]].copy()
    rot = view[F['rotation']]
    if flip:  # mmpose shifts and rotates in the flipped image; mirrored into the original image
        offset[0] = -offset[0]
        rot = -rot
    center = center + offset * scale
    scale = scale * view[F['scale']]
    return center, scale, rot, flip


def view_box_scales(bboxes, views) -> np.ndarray:
    """(N, 2) float32 box sizes (before the aspect fix) of rows of boxes (N, 4) and views (N, P)."""
    bboxes = np.asarray(bboxes).reshape(-1, 4)
    views = np.asarray(views).reshape(bboxes.shape[0], NUM_VIEW_FIELDS)
    return np.stack([view_box(b, v)[1] for b, v in zip(bboxes, views)]) if len(bboxes) \
        else np.zeros((0, 2), np.float32)


def view_geometry(bbox, view, input_size):
    """(center (2,), scale (2,), rot (deg), flip (bool), M (2, 3) image -> crop) of a view at `input_size`.

    The crop is the view's box with its aspect fixed to `input_size` (TopdownAffine): a student and
    a teacher with another input size share centre, rotation and flip, and each gets its native crop;
    data.geometry.teacher_to_student_bins relates their bins. Arithmetic follows mmpose's float32
    flow, so the matrix of a non-flipped view equals TopdownAffine's for the same numbers.
    """
    center, scale, rot, flip = view_box(bbox, view)
    w, h = int(input_size[0]), int(input_size[1])
    scale = fix_aspect_ratio(scale, w / h)
    M = get_warp_matrix(center, scale, rot, (w, h))
    if flip:
        M = compose_affine(flip_matrix(w), M)
    return center, scale, rot, flip, M


def view_matrices(bboxes, views, input_size) -> np.ndarray:
    """(N, 2, 3) image -> crop matrices for rows of boxes (N, 4) and views (N, P)."""
    bboxes = np.asarray(bboxes).reshape(-1, 4)
    views = np.asarray(views).reshape(bboxes.shape[0], NUM_VIEW_FIELDS)
    return np.stack([view_geometry(b, v, input_size)[4] for b, v in zip(bboxes, views)]) \
        if len(bboxes) else np.zeros((0, 2, 3))


def warp_crop(image: np.ndarray, M: np.ndarray, input_size) -> np.ndarray:
    """The one warp every crop goes through (dump and train alike)."""
    return cv2.warpAffine(image, M, (int(input_size[0]), int(input_size[1])), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def replay_view(image: np.ndarray, bbox, view, input_size):
    """(crop uint8 (h, w, 3), M (2, 3)) of one view of one instance at a model's input size."""
    M = view_geometry(bbox, view, input_size)[4]
    return warp_crop(image, M, input_size), M


def teacher_inputs(images, bboxes, views, input_sizes: dict, mirrored=None) -> tuple[dict, np.ndarray]:
    """Contract 2's inputs for rows of instances under their views, built in one place (dump, cache
    fidelity, online training, benchmarks): {name: (n, h, w, 3) uint8} each teacher's native crop of
    the view box at its input size (the view's mirror, data.views.mirror_matrix, where `mirrored`),
    and the (n, 2) view-box scales that relate each teacher's bins to the student's
    (data.geometry.teacher_to_student_bins). `images`: the rows' decoded images."""
    bboxes = np.asarray(bboxes).reshape(-1, 4)
    views = np.asarray(views).reshape(bboxes.shape[0], NUM_VIEW_FIELDS)
    mirrored = np.zeros(len(bboxes), bool) if mirrored is None else np.asarray(mirrored, bool)
    crops = {}
    for name, size in input_sizes.items():
        mats = (view_geometry(b, v, size)[4] for b, v in zip(bboxes, views))
        crops[name] = np.stack([warp_crop(img, mirror_matrix(M, size) if m else M, size)
                                for img, M, m in zip(images, mats, mirrored)])
    return crops, view_box_scales(bboxes, views)


def view_keypoints(keypoints, visible, views, M, flip_indices):
    """Keypoints in crop pixels and their visibility, left/right swapped on flipped views.

    keypoints (K, 2) | (N, K, 2), visible (K,) | (N, K), views (P,) | (N, P), M (2, 3) | (N, 2, 3);
    flip_indices (K,): the skeleton's left/right permutation (Skeleton.flip_indices).
    Visibility is only permuted: zeroing joints that leave the crop is the codec's job.
    """
    kp = np.asarray(keypoints, np.float32)
    vis = np.asarray(visible)
    single = kp.ndim == 2
    if single:
        kp, vis = kp[None], vis[None]
        views, M = np.asarray(views)[None], np.asarray(M)[None]
    views = np.asarray(views)
    out = transform_points(kp, np.asarray(M, np.float64))
    flip = views[:, F['flip']] > 0
    perm = np.asarray(flip_indices)
    out = np.where(flip[:, None, None], out[:, perm], out)
    vis = np.where(flip[:, None], vis[:, perm], vis)
    return (out[0], vis[0]) if single else (out, vis)

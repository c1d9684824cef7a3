"""Box and crop geometry, numerically the same as mmpose 1.3 (mmpose/structures/bbox/transforms.py and
TopdownAffine). Pure numpy + cv2, no I/O.

Conventions
- A box is xyxy pixels; (center, scale) is the box centre and its padded width/height in pixels.
- A crop of `output_size` (w, h) maps the box centre to (w/2, h/2) (mmpose's non-UDP warp).
- A horizontally flipped crop mirrors crop space about that centre: u -> W - u (`flip_matrix`). Composed
  into the warp, this equals mmpose's RandomFlip of the whole image (x -> img_w - 1 - x, box centre
  likewise) followed by the warp, so one cv2.warpAffine makes the crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def bbox_xywh2xyxy(bbox_xywh: np.ndarray) -> np.ndarray:
    """(..., 4) x, y, w, h -> x1, y1, x2, y2 (extra trailing columns, e.g. a score, are kept)."""
    bbox = np.array(bbox_xywh, copy=True)
    bbox[..., 2] = bbox[..., 0] + bbox[..., 2]
    bbox[..., 3] = bbox[..., 1] + bbox[..., 3]
    return bbox


def bbox_xyxy2cs(bbox: np.ndarray, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """(4,) or (N, 4) xyxy -> center (.., 2), scale (.., 2) = box size * padding (mmpose's
    bbox_xyxy2cs; the default padding is GetBBoxCenterScale's 1.25)."""
    bbox = np.asarray(bbox)
    scale = (bbox[..., 2:4] - bbox[..., 0:2]) * padding
    center = (bbox[..., 2:4] + bbox[..., 0:2]) * 0.5
    return center, scale


def bbox_cs2xyxy(center: np.ndarray, scale: np.ndarray, padding: float = 1.0) -> np.ndarray:
    """Inverse of `bbox_xyxy2cs`: center, scale (.., 2) -> xyxy (.., 4) (mmpose's bbox_cs2xyxy)."""
    center = np.asarray(center)
    wh = np.asarray(scale) / padding
    xy = center - 0.5 * wh
    return np.concatenate([xy, xy + wh], axis=-1)


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow (never shrink) box sizes (.., 2) to width/height == aspect_ratio, as mmpose's
    TopdownAffine._fix_aspect_ratio."""
    scale = np.asarray(scale)
    w, h = scale[..., 0:1], scale[..., 1:2]
    return np.where(w > h * aspect_ratio,
                    np.concatenate([w, w / aspect_ratio], axis=-1),
                    np.concatenate([h * aspect_ratio, h], axis=-1))


def _rotate_point(point: np.ndarray, angle_rad) -> np.ndarray:
    sn, cs = np.sin(angle_rad), np.cos(angle_rad)
    return np.array([[cs, -sn], [sn, cs]]) @ point


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point b + (a - b) rotated by 90 degrees; fixes the affine map with no shear."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=d.dtype)


def get_warp_matrix(center, scale, rot, output_size, shift=(0., 0.), inv: bool = False) -> np.ndarray:
    """(2, 3) float64 affine map image -> crop (or crop -> image with inv=True).

    The box of size `scale` around `center`, rotated by `rot` degrees, fills `output_size` (w, h):
    its centre lands at (w/2, h/2) and its width at w (the aspect is assumed already fixed). Same
    three-point construction and float32 rounding as mmpose's get_warp_matrix(fix_aspect_ratio=True),
    so matrices agree bit for bit when fed the same float32 inputs.
    """
    center = np.asarray(center)
    scale = np.asarray(scale)
    shift = np.array(shift)
    if center.shape != (2,) or scale.shape != (2,) or len(output_size) != 2 or shift.shape != (2,):
        raise ValueError(f'get_warp_matrix: expected center (2,), scale (2,), output_size (w, h), shift (2,); '
                         f'got {center.shape}, {scale.shape}, {output_size}, {shift.shape}')
    dst_w, dst_h = output_size[0], output_size[1]
    rot_rad = np.deg2rad(rot)
    src_dir = _rotate_point(np.array([scale[0] * -0.5, 0.]), rot_rad)
    dst_dir = np.array([dst_w * -0.5, 0.])

    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + scale * shift
    src[1] = center + src_dir + scale * shift
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def transform_points(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine map (or a stack (N, 2, 3) to points (N, ..., 2)) to points (..., 2).
    Computed in float64; float32 input gives float32 output."""
    points = np.asarray(points)
    M = np.asarray(M, dtype=np.float64)
    p = points.astype(np.float64)
    if M.ndim == 2:
        out = p @ M[:, :2].T + M[:, 2]
    else:  # one matrix per leading row
        lin = M[:, :, :2].reshape((M.shape[0],) + (1,) * (p.ndim - 2) + (2, 2))
        off = M[:, :, 2].reshape((M.shape[0],) + (1,) * (p.ndim - 2) + (2,))
        out = np.einsum('...ij,...j->...i', lin, p) + off
    return out.astype(np.float32) if points.dtype == np.float32 else out


def flip_matrix(width: float) -> np.ndarray:
    """(3, 3) homogeneous map of crop space u -> width - u, v -> v (mirror about the crop centre)."""
    return np.array([[-1., 0., float(width)], [0., 1., 0.], [0., 0., 1.]])


def compose_affine(A: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(2, 3) matrix of x -> A(M(x)), A (2, 3) or (3, 3), M (2, 3)."""
    A3 = np.vstack([np.asarray(A, np.float64)[:2], [0., 0., 1.]])
    M3 = np.vstack([np.asarray(M, np.float64), [0., 0., 1.]])
    return (A3 @ M3)[:2]


@dataclass(frozen=True)
class BinMap:
    """teacher_bin = a * student_bin + b, per axis (x and y): floats, or (N,) arrays (one per instance)."""
    ax: float | np.ndarray
    bx: float | np.ndarray
    ay: float | np.ndarray
    by: float | np.ndarray


def teacher_to_student_bins(student_input_size, teacher_input_size, box_scale,
                            student_split: float = 2.0, teacher_split: float = 2.0) -> BinMap:
    """Affine relation between the SimCC bins of a student crop and a teacher crop of the same view.

    Both crops are native crops of one view box (data.views.view_box): same centre, rotation and
    flip, each with the box's aspect fixed to its own input size. They differ by a uniform zoom k
    (teacher pixels per student pixel) and a shift that keeps the centres together:
        u_t = k * (u_s - W_s / 2) + W_t / 2     (same for v with H)
    with k = (W_t / sw_t) / (W_s / sw_s), sw_* the fixed box widths. k depends on the box's aspect
    (1 for a box taller than both aspects, W_t/W_s-like for a wide one), so `box_scale` (the view
    box's (w, h) before the aspect fix, (2,) or (N, 2)) gives one map per instance. With
    bin = pixel * split: a = k * teacher_split / student_split, b = teacher_split * (W_t/2 - k * W_s/2).
    The mirror u -> W - u maps this relation onto itself, so it holds for flipped views too.
    k within 1e-6 of 1 is snapped to 1 (float32 rounding of the aspect fix), so crops of equal
    pixel density relate by an exact integer shift.
    """
    ws, hs = float(student_input_size[0]), float(student_input_size[1])
    wt, ht = float(teacher_input_size[0]), float(teacher_input_size[1])
    if min(ws, hs, wt, ht) <= 0 or student_split <= 0 or teacher_split <= 0:
        raise ValueError(f'teacher_to_student_bins: sizes and splits must be positive, got student '
                         f'{student_input_size}, teacher {teacher_input_size}, splits {student_split}, {teacher_split}')
    box = np.asarray(box_scale, np.float32)
    if box.shape[-1:] != (2,) or box.ndim > 2 or not (box > 0).all():
        raise ValueError(f'teacher_to_student_bins: box_scale must be positive (w, h) rows, got shape {box.shape}')
    sw_s = fix_aspect_ratio(box.reshape(-1, 2), ws / hs)[:, 0].astype(np.float64)
    sw_t = fix_aspect_ratio(box.reshape(-1, 2), wt / ht)[:, 0].astype(np.float64)
    k = (wt * sw_s) / (ws * sw_t)
    k = np.where(np.abs(k - 1.0) < 1e-6, 1.0, k)
    a = k * teacher_split / student_split
    bx = teacher_split * (wt / 2 - k * ws / 2)
    by = teacher_split * (ht / 2 - k * hs / 2)
    if box.ndim == 1:
        return BinMap(ax=float(a[0]), bx=float(bx[0]), ay=float(a[0]), by=float(by[0]))
    return BinMap(ax=a, bx=bx, ay=a.copy(), by=by)

"""Contract 2's home: a teacher on its native crops -> SimCC log-probabilities over the STUDENT's bins,
plus the teacher mass that falls outside the student's crop.

The dump stores exactly these rows; online training computes them live; `cache-fidelity` and the
benchmarks compare against them. Each teacher sees its own native crop of the view box (its input
size and aspect, as mmpose's TopdownAffine would give it); `view_box_scales` of the same view boxes
relate its bins to the student's, one exact linear map per instance
(data.geometry.teacher_to_student_bins). Student bins its crop does not reach get probability 0.
"""
from __future__ import annotations

import numpy as np
import torch

from data.geometry import teacher_to_student_bins
from teachers.simcc import map_teacher_logits


def student_bins(student_size, student_split: float) -> tuple[int, int]:
    """(x bins, y bins) of a student of input size (w, h) and SimCC split ratio."""
    return int(student_size[0] * student_split), int(student_size[1] * student_split)


@torch.no_grad()
def run_teacher(model, crops, device, batch_size: int):
    """uint8 BGR crops (n, H, W, 3), numpy or tensor -> SimCC logits (n, K, Wx), (n, K, Wy), fp32 on device."""
    xs, ys = [], []
    use_amp = device.type == 'cuda'
    for i in range(0, len(crops), batch_size):
        imgs = torch.as_tensor(crops[i:i + batch_size]).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            x, y = model(model.normalize(imgs))
        xs.append(x.float())
        ys.append(y.float())
    return torch.cat(xs), torch.cat(ys)


def to_student_bins(x, y, bin_map, bins: tuple[int, int]):
    """Teacher logits -> student-bin log-probs + the mass outside the student crop, per axis.
    `bin_map`: one BinMap for all rows, or per-row arrays (data.geometry.teacher_to_student_bins)."""
    sx, ox = map_teacher_logits(x, bin_map.ax, bin_map.bx, bins[0])
    sy, oy = map_teacher_logits(y, bin_map.ay, bin_map.by, bins[1])
    return sx, sy, ox, oy


def teacher_rows(model, crops, box_scales, student_size, student_split: float, device, batch_size: int = 64):
    """The cache rows of one teacher for a batch of views: its native crops (n, H_t, W_t, 3) and the
    view boxes' scales (n, 2) -> (x log-probs (n, K, Bx), y log-probs (n, K, By), x outside (n, K),
    y outside (n, K)) over the student's bins, torch tensors on `device`."""
    x, y = run_teacher(model, crops, device, batch_size)
    bin_map = teacher_to_student_bins(student_size, model.input_size, np.asarray(box_scales), student_split,
                                      model.codec.simcc_split_ratio)
    return to_student_bins(x, y, bin_map, student_bins(student_size, student_split))

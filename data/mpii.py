"""MPII Human Pose in mmpose's JSON layout (mpii_train.json / mpii_val.json) -> InstanceTable.

Rows follow mmpose 1.3's MpiiDataset:
- scale (units of 200 px) -> box side s = 200 * scale (square);
- centre moved down by 15 px per scale unit (centre[1] += 15 * scale) unless centre[0] == -1, then made
  0-based (centre -= 1);
- bbox = the xyxy box of that centre and side (mmpose's bbox_cs2xyxy, padding 1), so
  bbox_xyxy2cs(bbox, padding=1.25) gives mmpose's GetBBoxCenterScale result (centre, 1.25 * s) up to
  float32 rounding (a few 1e-5 px).
- keypoints: the 1-based MATLAB joints made 0-based (joints - 1), in the image's pixel frame like the
  centre. mmpose 1.3 keeps the joints 1-based and instead adds 1 to predictions in MpiiPCKAccuracy;
  comparing predictions directly with these keypoints is the same PCKh. Joints with joints_vis 0 are
  stored as (0, 0), not visible.
- area = 0.53 * box area (mmpose), head_size = 0.6 * head box diagonal (PCKh, SC_BIAS) when head boxes
  are given, else NaN.
Head boxes: mpii_gt_val.mat ('headboxes_src', 2 x 2 x N, aligned by order with mpii_val.json), or for
synthetic data a .npy / .json array of N boxes as (N, 2, 2) [[x1, y1], [x2, y2]] or (N, 4) x1, y1, x2, y2.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from data.geometry import bbox_cs2xyxy
from data.instances import InstanceTable
from data.skeletons import MPII16, Skeleton, to_union, union_mask
from data.validation import RecordCheck, image_inside_root

PIXEL_STD = 200.0
HEAD_SIZE_FACTOR = 0.6  # SC_BIAS of the MPII PCKh evaluation
_K = MPII16.num_joints


class MpiiFormatError(ValueError):
    pass


def load_head_boxes(path) -> np.ndarray:
    """(N, 2, 2) head boxes [[x1, y1], [x2, y2]] from mpii_gt_val.mat, .npy or .json."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'MPII head box file not found: {path}')
    suffix = path.suffix.lower()
    try:
        if suffix == '.mat':
            from scipy.io import loadmat
            mat = loadmat(str(path))
            if 'headboxes_src' not in mat:
                keys = sorted(k for k in mat if not k.startswith('__'))
                raise MpiiFormatError(f'{path}: no "headboxes_src" variable (variables: {keys})')
            boxes = np.transpose(np.asarray(mat['headboxes_src'], np.float64), [2, 0, 1])
        elif suffix == '.npy':
            boxes = np.load(path, allow_pickle=False)
        elif suffix == '.json':
            with open(path) as f:
                boxes = np.array(json.load(f), dtype=np.float64)
        else:
            raise MpiiFormatError(f'{path}: head boxes must be a .mat, .npy or .json file')
    except MpiiFormatError:
        raise
    except Exception as e:  # scipy/numpy/json readers raise several unrelated types for a bad file
        raise MpiiFormatError(f'{path}: cannot read head boxes ({type(e).__name__}: {e})') from None
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim == 2 and boxes.shape[1] == 4:
        boxes = boxes.reshape(-1, 2, 2)
    if boxes.ndim != 3 or boxes.shape[1:] != (2, 2):
        raise MpiiFormatError(f'{path}: head boxes must have shape (N, 2, 2) or (N, 4), got {boxes.shape}')
    return boxes


def head_sizes(boxes: np.ndarray) -> np.ndarray:
    """PCKh normaliser per head box (N, 2, 2): 0.6 * length of the box diagonal."""
    return (np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1) * HEAD_SIZE_FACTOR).astype(np.float32)


def _image_ids(names: list[str]) -> np.ndarray:
    """mmpose's img_id = int(image name stem) (MPII names are digits); else index of first appearance."""
    stems = [n.split('.')[0] for n in names]
    if all(s.isdigit() for s in stems):
        return np.array([int(s) for s in stems], np.int64)
    first: dict[str, int] = {}
    return np.array([first.setdefault(n, len(first)) for n in names], np.int64)


def load_mpii(ann_file, image_root, head_boxes_file=None, check: RecordCheck | None = None,
              union: Skeleton = MPII16) -> InstanceTable:
    """MPII's 16 joints in `union` (default: MPII's own skeleton). Entries with joints and joints_vis all NaN, a non-finite centre, a scale <= 0, non-finite
    visible joints or an image outside `image_root` are skipped and counted in `check` (or raise, in
    strict mode); head boxes stay aligned with the kept entries."""
    ann_file = Path(ann_file)
    check = check if check is not None else RecordCheck(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f'MPII annotation file not found: {ann_file}')
    try:
        with open(ann_file) as f:
            anns = json.load(f)
    except json.JSONDecodeError as e:
        raise MpiiFormatError(f'{ann_file}: not valid JSON ({e})') from None
    if not isinstance(anns, list):
        raise MpiiFormatError(f'{ann_file}: expected a list of MPII annotations '
                              f'(image, center, scale, joints, joints_vis)')
    n = len(anns)
    center = np.zeros((n, 2), np.float32)
    scale = np.zeros((n, 2), np.float32)
    joints = np.zeros((n, _K, 2), np.float32)
    vis = np.zeros((n, _K), np.float32)
    names, keep = [], np.ones(n, bool)
    for i, ann in enumerate(anns):
        try:
            c = np.array(ann['center'], dtype=np.float32).reshape(2)
            s = np.array([ann['scale'], ann['scale']], dtype=np.float32) * np.float32(PIXEL_STD)
            j = np.array(ann['joints'], dtype=np.float32).reshape(_K, 2)
            v = np.array(ann['joints_vis'], dtype=np.float32).reshape(_K)
            names.append(str(ann['image']))
        except (KeyError, TypeError, ValueError) as e:
            raise MpiiFormatError(f'{ann_file}: entry [{i}] lacks a valid image/center/scale/joints (16x2)/'
                                  f'joints_vis (16) ({e!r})') from None
        reason = ('keypoints all NaN' if np.isnan(j).all() and np.isnan(v).all() else
                  'non-finite centre' if not np.isfinite(c).all() else
                  'scale <= 0 or not finite' if not (np.isfinite(s).all() and s[0] > 0) else
                  'non-finite visible joint' if not np.isfinite(j[v > 0]).all() else
                  'image path outside the image root' if image_inside_root(image_root, names[-1]) is None else None)
        if reason:
            check.skip(f'entry [{i}] ({names[-1]})', reason)
            keep[i] = False
            continue
        if c[0] != -1:  # mmpose: move the centre down to avoid cutting the feet
            c[1] = c[1] + np.float32(15. / PIXEL_STD) * s[1]
        center[i] = c - 1  # MATLAB 1-based -> 0-based
        scale[i] = s
        joints[i] = j - 1
        vis[i] = v > 0
    order = np.flatnonzero(keep)  # instance_key stays the entry's index in the file
    center, scale, joints, vis = center[keep], scale[keep], joints[keep], vis[keep]
    names = [names[i] for i in order]
    bbox = bbox_cs2xyxy(center, scale).astype(np.float32)
    joints = np.where(vis[..., None] > 0, joints, 0).astype(np.float32)
    area = np.clip((bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1]) * 0.53, 1.0, None).astype(np.float32)

    head = np.full(len(order), np.nan, np.float32)
    if head_boxes_file is not None:
        boxes = load_head_boxes(head_boxes_file)
        if len(boxes) != n:
            raise MpiiFormatError(f'{head_boxes_file}: {len(boxes)} head boxes but {ann_file} has {n} entries '
                                  f'(they are aligned by order)')
        head = head_sizes(boxes)[keep]
    n = len(order)
    check.kept = n

    image_root = str(image_root)
    return InstanceTable(
        dataset=np.full(n, 'mpii', dtype='<U8'),
        image_path=np.array([os.path.join(image_root, nm) for nm in names], dtype=str) if n else np.zeros(0, '<U1'),
        image_id=_image_ids(names),
        instance_key=order.astype(np.int64),
        bbox=bbox,
        bbox_score=np.ones(n, np.float32),
        keypoints=to_union(joints, MPII16, union),
        keypoints_visible=to_union(vis, MPII16, union),
        annotated=np.tile(union_mask(MPII16, union), (n, 1)),
        head_size=head,
        area=area,
    )

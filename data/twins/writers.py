"""The synthetic twins' files in the real formats: COCO-format keypoints json (COCO's 17 joints, AI
Challenger's 14), mmpose's MPII json and mpii_gt_val.mat, JPEG images, and the full truth (.npz: every
joint of the figure model, with their names); every file written atomically."""
from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np

from data.files import atomic_write
from data.skeletons import COCO17, MPII16, TWIN_FIGURE, Skeleton, union_indices
from data.twins.figure import FIGURE_JOINTS
from data.twins.render import PersonTruth

JPEG_QUALITY = 90
MPII_PIXEL_STD = 200.0  # MPII scale unit: box side in pixels per unit of scale
MPII_CENTER_SHIFT = 15.0  # mmpose moves the MPII centre down by 15 * scale pixels
# The joint names the real mpii_gt_val.mat lists, in MPII joint order.
MPII_MAT_JOINT_NAMES = ('rank', 'rkne', 'rhip', 'lhip', 'lkne', 'lank', 'pelv', 'thor', 'neck', 'head',
                        'rwri', 'relb', 'rsho', 'lsho', 'lelb', 'lwri')

def write_atomic(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_jpeg(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f'could not encode {path}')
    write_atomic(path, buf.tobytes())


def write_json(path: Path, obj, indent=None) -> None:
    write_atomic(path, json.dumps(obj, indent=indent).encode())


def coco_annotation(t: PersonTruth, ann_id: int, image_id: int, skeleton: Skeleton = COCO17) -> dict | None:
    """COCO-format person annotation of `skeleton`'s joints (COCO's visibility flags: 2 seen, 1 hidden,
    0 not labelled), or None when nothing of the person is visible."""
    mask = t.visible_mask.astype(np.uint8)
    area = int(mask.sum())
    if area < 16:
        return None
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    segmentation = [cv2.approxPolyDP(c, 1.0, True).reshape(-1).astype(float).tolist() for c in contours]
    segmentation = [s for s in segmentation if len(s) >= 6]
    own = union_indices(skeleton, TWIN_FIGURE)
    labelled = t.in_image[own] & ~t.face_hidden[own]
    v = np.where(labelled, np.where(t.visible[own], 2, 1), 0)
    xy = np.where(labelled[:, None], t.keypoints[own], 0.0)
    keypoints = np.concatenate([xy, v[:, None]], 1).reshape(-1)
    return {'segmentation': segmentation, 'num_keypoints': int(labelled.sum()), 'area': float(area), 'iscrowd': 0,
            'keypoints': [round(float(k), 2) if i % 3 < 2 else int(k) for i, k in enumerate(keypoints)],
            'image_id': image_id, 'bbox': [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
            'category_id': 1, 'id': ann_id}


def coco_categories(skeleton: Skeleton = COCO17) -> list[dict]:
    return [{'supercategory': 'person', 'id': 1, 'name': 'person', 'keypoints': list(skeleton.joint_names),
             'skeleton': [[a + 1, b + 1] for a, b in skeleton.links]}]


MPII_UNION = union_indices(MPII16, TWIN_FIGURE)


def mpii_record(t: PersonTruth, image_name: str) -> dict | None:
    """mmpose's MPII json row (1-based joints, centre/scale in MPII convention), or None if the person
    shows fewer than 6 of the 16 joints (MPII annotates people that are mostly in view)."""
    vis = t.in_image[MPII_UNION]
    if vis.sum() < 6:
        return None
    joints = np.where(vis[:, None], t.keypoints[MPII_UNION] + 1.0, -1.0)
    x1, y1, x2, y2 = t.body_box
    scale = max(x2 - x1, y2 - y1) / MPII_PIXEL_STD
    center = np.array([(x1 + x2) / 2 + 1, (y1 + y2) / 2 + 1 - MPII_CENTER_SHIFT * scale])
    return {'joints_vis': vis.astype(int).tolist(), 'joints': np.round(joints, 2).tolist(), 'image': image_name,
            'scale': round(float(scale), 6), 'center': np.round(center, 2).tolist()}


def write_mpii_gt_mat(path: Path, truths: list[PersonTruth], records: list[dict]) -> None:
    """mpii_gt_val.mat as the real one: head boxes, missing joints, 1-based positions, joint names."""
    from scipy.io import savemat
    n = len(truths)
    headboxes = np.zeros((2, 2, n))
    pos = np.zeros((16, 2, n))
    missing = np.zeros((16, n))
    for k, (t, r) in enumerate(zip(truths, records)):
        headboxes[:, :, k] = t.head_box.reshape(2, 2) + 1.0
        pos[:, :, k] = np.array(r['joints'])
        missing[:, k] = 1 - np.array(r['joints_vis'])
    names = np.empty((1, 16), dtype=object)
    for k, name in enumerate(MPII_MAT_JOINT_NAMES):
        names[0, k] = name
    buf = io.BytesIO()
    savemat(buf, {'headboxes_src': headboxes, 'jnt_missing': missing, 'pos_gt_src': pos, 'dataset_joints': names})
    data = bytearray(buf.getvalue())
    # the 116-byte text header carries a creation time; a fixed one keeps the file bit-identical per seed
    # (the label names the module that first wrote these files: kept, so the files stay bit-identical)
    data[:116] = b'MATLAB 5.0 MAT-file, Platform: posix, Created by: data/synthetic.py'.ljust(116, b' ')
    write_atomic(path, bytes(data))


def truth_arrays(truths: list[PersonTruth], keys: list[int], image_ids: list[int]) -> dict:
    head = np.array([t.head_box for t in truths]).reshape(-1, 4)
    return {'instance_key': np.array(keys, np.int64), 'image_id': np.array(image_ids, np.int64),
            'joint_names': np.array(FIGURE_JOINTS),
            'keypoints': np.array([t.keypoints for t in truths], np.float32).reshape(-1, len(FIGURE_JOINTS), 2),
            'visible': np.array([t.visible for t in truths], bool).reshape(-1, len(FIGURE_JOINTS)),
            'in_image': np.array([t.in_image for t in truths], bool).reshape(-1, len(FIGURE_JOINTS)),
            'head_size': (0.6 * np.hypot(head[:, 2] - head[:, 0], head[:, 3] - head[:, 1])).astype(np.float32),
            'body_box': np.array([t.body_box for t in truths], np.float32).reshape(-1, 4),
            'activity': np.array([t.activity for t in truths], dtype='<U16')}


def write_truth(path: Path, arrays: dict) -> None:
    # uncompressed npz: bytes depend only on the arrays; the temporary name ends in .npz as np.savez wants
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))

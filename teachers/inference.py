"""Top-down inference glue: crops as mmpose's TopdownAffine makes them (view 0, no augmentation), the
model's SimCC output decoded and mapped back into image pixels, as union-21 keypoints. The one
prediction path of evaluation, `cli.py predict` and the benchmarks."""
from __future__ import annotations

import numpy as np
import torch

from data.geometry import transform_points
from data.images import decode_grouped
from data.skeletons import UNION21, union_indices
from data.views import identity_view, replay_view, view_geometry


def crop_to_image(keypoints_crop: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Crop pixels -> image pixels with the inverse of the crop's warp matrix."""
    A = np.vstack([M, [0, 0, 1]])
    return transform_points(keypoints_crop, np.linalg.inv(A)[:2])


@torch.no_grad()
def predict_boxes(model, images, boxes, device) -> tuple[np.ndarray, np.ndarray]:
    """The one prediction path (evaluation, `cli.py predict`): each (image, xyxy box) pair cropped as
    mmpose's TopdownAffine does (view 0: no augmentation), the SimCC output decoded and mapped back
    into image pixels. Returns union-21 keypoints (n, 21, 2) and scores (n, 21); the joints the model
    does not predict stay 0."""
    model.eval()
    joints = union_indices(model.skeleton_name)
    kpts = np.zeros((len(boxes), UNION21.num_joints, 2), np.float32)
    scores = np.zeros((len(boxes), UNION21.num_joints), np.float32)
    if not len(boxes):
        return kpts, scores
    crops, mats = zip(*(replay_view(img, box, identity_view(), tuple(model.input_size))
                        for img, box in zip(images, boxes)))
    x, y = model(model.normalize(torch.from_numpy(np.stack(crops)).to(device)))
    k, sc = model.codec.decode(x.float().cpu().numpy(), y.float().cpu().numpy())
    for j, M in enumerate(mats):
        kpts[j, joints] = crop_to_image(k[j], M)
        scores[j, joints] = sc[j]
    return kpts, scores


def predict_model(model, table, device, batch_size=64):
    """Run `model` on view 0 of every row; returns union-21 keypoints (N,21,2), scores (N,21)."""
    kpts = np.zeros((len(table), UNION21.num_joints, 2), np.float32)
    scores = np.zeros((len(table), UNION21.num_joints), np.float32)
    for s in range(0, len(table), batch_size):
        rows = np.arange(s, min(s + batch_size, len(table)))
        images = decode_grouped(table.image_path[rows])
        kpts[rows], scores[rows] = predict_boxes(model, [images[i] for i in range(len(rows))], table.bbox[rows],
                                                 device)
    return kpts, scores


def predict_from_simcc(logp_x, logp_y, table, rows, codec, student_size, union_joints):
    """Decode cached student-bin rows (view 0) into image keypoints: the teachers' own predictions."""
    kpts = np.zeros((len(rows), 21, 2), np.float32)
    scores = np.zeros((len(rows), 21), np.float32)
    # Decode probabilities, not log-probs: mmpose's decode marks joints whose peak value is <= 0 as
    # invalid, and every log-probability is <= 0.
    k, sc = codec.decode(np.exp(logp_x), np.exp(logp_y))
    view = identity_view()
    for j, r in enumerate(rows):
        M = view_geometry(table.bbox[r], view, student_size)[-1]
        kpts[j, union_joints] = crop_to_image(k[j], M)
        scores[j, union_joints] = sc[j]
    return kpts, scores

"""Top-down inference glue: crops as mmpose's TopdownAffine makes them (no augmentation), the model's
SimCC output (flip test: averaged with the mirrored crop's, as mmpose's test_cfg flip_test) decoded and
mapped back into image pixels, as keypoints of the run's union skeleton. The one prediction path of evaluation,
`cli.py predict` and the benchmarks."""
from __future__ import annotations

import numpy as np
import torch

from data.geometry import transform_points
from data.images import decode_grouped
from data.skeletons import Skeleton, model_skeleton, union_indices
from data.views import identity_view, replay_view, view_geometry
from teachers.simcc import mirror_simcc


def crop_to_image(keypoints_crop: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Crop pixels -> image pixels with the inverse of the crop's warp matrix."""
    A = np.vstack([M, [0, 0, 1]])
    return transform_points(keypoints_crop, np.linalg.inv(A)[:2])


@torch.no_grad()
def predict_boxes(model, images, boxes, device, union: Skeleton, flip_test=False) -> tuple[np.ndarray, np.ndarray]:
    """The one prediction path (evaluation, `cli.py predict`): each (image, xyxy box) pair cropped as
    mmpose's TopdownAffine does (no augmentation), the SimCC output decoded and mapped back into image
    pixels. `flip_test`: the logits averaged with those of the mirrored crop, mirrored back
    (teachers.simcc.mirror_simcc: exact in crop pixels). Returns keypoints (n, K, 2) and scores (n, K)
    in `union`; the joints the model does not predict stay 0."""
    model.eval()
    skeleton = model_skeleton(model.skeleton_name, union)
    joints = union_indices(skeleton, union)
    kpts = np.zeros((len(boxes), union.num_joints, 2), np.float32)
    scores = np.zeros((len(boxes), union.num_joints), np.float32)
    if not len(boxes):
        return kpts, scores
    size = tuple(model.input_size)
    crops, mats = zip(*(replay_view(img, box, identity_view(), size) for img, box in zip(images, boxes)))
    x, y = model(model.normalize(torch.from_numpy(np.stack(crops)).to(device)))
    if flip_test:
        mirrored = np.stack([replay_view(img, box, identity_view(flip=True), size)[0] for img, box in zip(images, boxes)])
        fx, fy = mirror_simcc(*model(model.normalize(torch.from_numpy(mirrored).to(device))),
                              skeleton.flip_indices)
        x, y = (x + fx) * 0.5, (y + fy) * 0.5
    k, sc = model.codec.decode(x.float().cpu().numpy(), y.float().cpu().numpy())
    for j, M in enumerate(mats):
        kpts[j, joints] = crop_to_image(k[j], M)
        scores[j, joints] = sc[j]
    return kpts, scores


def predict_model(model, table, device, union: Skeleton, batch_size=64, flip_test=False):
    """Run `model` on the un-augmented crop of every row (+ its mirror: `flip_test`); returns keypoints
    (N, K, 2) and scores (N, K) in `union` (the table's skeleton)."""
    kpts = np.zeros((len(table), union.num_joints, 2), np.float32)
    scores = np.zeros((len(table), union.num_joints), np.float32)
    for s in range(0, len(table), batch_size):
        rows = np.arange(s, min(s + batch_size, len(table)))
        images = decode_grouped(table.image_path[rows])
        kpts[rows], scores[rows] = predict_boxes(model, [images[i] for i in range(len(rows))], table.bbox[rows],
                                                 device, union, flip_test=flip_test)
    return kpts, scores


def predict_from_simcc(logp_x, logp_y, table, rows, codec, student_size, union_joints, union: Skeleton,
                       mirrored=None):
    """Decode cached student-bin rows of the un-augmented view into image keypoints: the teachers' own
    predictions. `mirrored`: (logp_x, logp_y) of the mirrored view (the val cache's view 1), averaged
    in as the flip test (log-probabilities: a per-joint constant away from mmpose's logits, so the
    same arg-max)."""
    union_joints = np.asarray(union_joints)
    kpts = np.zeros((len(rows), union.num_joints, 2), np.float32)
    scores = np.zeros((len(rows), union.num_joints), np.float32)
    if mirrored is not None:
        position = {int(u): j for j, u in enumerate(union_joints)}  # the rows' flip pairs, in their order
        flip = [position[int(union.flip_indices[u])] for u in union_joints]
        fx, fy = mirror_simcc(mirrored[0], mirrored[1], flip)
        logp_x, logp_y = (logp_x + fx) * 0.5, (logp_y + fy) * 0.5
    # Decode probabilities, not log-probs: mmpose's decode marks joints whose peak value is <= 0 as
    # invalid, and every log-probability is <= 0.
    k, sc = codec.decode(np.exp(logp_x), np.exp(logp_y))
    view = identity_view()
    for j, r in enumerate(rows):
        M = view_geometry(table.bbox[r], view, student_size)[-1]
        kpts[j, union_joints] = crop_to_image(k[j], M)
        scores[j, union_joints] = sc[j]
    return kpts, scores

"""Validation wiring: predictions on the val split's view 0, scored with the field's metrics.

Predictions are union-21 keypoints in image pixels; `covered` says which joints the predictor has
(a COCO teacher has no head_top). Metrics per dataset: COCO AP (pycocotools) for COCO-type
datasets, PCKh for MPII-type ones (head boxes needed), and on datasets with a full 21-joint truth
(the synthetic twins) PCK split into the joints the dataset annotates and the joints it lacks.
"""
from __future__ import annotations

import numpy as np
import torch

from data.geometry import transform_points
from data.images import decode_grouped
from data.skeletons import COCO17, MPII16, UNION21, union_indices, union_mask
from data.views import identity_view, replay_view, view_geometry
from outputs.evaluate import (coco_keypoint_eval, pck_union, pckh, predictions_to_coco_results,
                              topdown_instance_areas)
from pipeline.config import resolve
from stages.common import model_geometry, split_instances


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


def pckh_unavailable(ds, head_size: np.ndarray) -> str | None:
    """Why PCKh cannot be computed on an MPII-type dataset's val rows (None when it can): PCKh
    divides each error by the person's head size, which only the head-box file gives."""
    if not ds['val'].get('head_boxes_file'):
        return 'no head-box file'
    unknown = int((~np.isfinite(head_size)).sum())
    return f'head size unknown for {unknown} of {len(head_size)} instances' if unknown else None


def missing_head_boxes(cfg) -> list[str]:
    """The MPII-type datasets whose val split has no head-box file (their PCKh is not computed)."""
    return [name for name, ds in cfg.datasets.items()
            if ds['type'] == 'mpii' and 'val' in ds and not ds['val'].get('head_boxes_file')]


def warn_missing_head_boxes(cfg) -> None:
    """One line per such dataset, so a run on real data does not find out from an empty report column."""
    for name in missing_head_boxes(cfg):
        print(f'warning: datasets.{name}.val has no head_boxes_file: PCKh on {name} is not computed '
              '(the report says "not computed: no head-box file")')


def evaluate_predictions(cfg, table, kpts, scores, covered: np.ndarray, datasets=None) -> dict:
    """Metrics of union-21 predictions on the val `table`, per dataset of the config. An MPII-type
    dataset whose PCKh cannot be computed says why under 'not_computed' (e.g. no head-box file)."""
    out = {}
    for name, ds in cfg.datasets.items():
        if datasets is not None and name not in datasets:
            continue
        rows = np.flatnonzero(table.dataset == name)
        if len(rows) == 0 or 'val' not in ds:
            continue
        m = {}
        if ds['type'] == 'coco' and covered[union_indices(COCO17)].all():
            coco_idx = union_indices(COCO17)
            # mmpose's CocoMetric: rescoring and OKS-NMS with the padded input box as the instance area.
            areas = topdown_instance_areas(table.bbox[rows], model_geometry(cfg.student.config)['input_size'])
            results = predictions_to_coco_results(
                table.image_id[rows], kpts[rows][:, coco_idx], scores[rows][:, coco_idx],
                table.bbox_score[rows], areas, use_nms=True)
            m['coco'] = coco_keypoint_eval(resolve(ds['val']['ann_file']), results)
        unavailable = pckh_unavailable(ds, table.head_size[rows]) if ds['type'] == 'mpii' else None
        if unavailable:  # said in the metrics, so the report shows why the PCKh cells are empty
            m['not_computed'] = {'pckh': unavailable}
        elif ds['type'] == 'mpii' and covered[union_indices(MPII16)].all():
            mpii_idx = union_indices(MPII16)
            gt = table.keypoints[rows][:, mpii_idx]
            vis = table.keypoints_visible[rows][:, mpii_idx]
            m['pckh@0.5'] = pckh(kpts[rows][:, mpii_idx], gt, vis, table.head_size[rows], thr=0.5)
            m['pckh@0.1'] = pckh(kpts[rows][:, mpii_idx], gt, vis, table.head_size[rows], thr=0.1)
        truth_file = ds.get('truth', {}).get('val')
        if truth_file and resolve(truth_file).exists():
            from data.synthetic import load_truth, truth_rows
            truth = load_truth(resolve(truth_file))
            at = truth_rows(table.select(rows), truth)
            t_kpts, t_vis, t_head = truth['keypoints21'][at], truth['visible21'][at], truth['head_size'][at]
            annotated = table.annotated[rows][0]
            m['pck_truth'] = pck_union(kpts[rows], t_kpts, t_vis * covered[None], t_head, annotated, thr=0.5)
        out[name] = m
    return out


def evaluate_model(cfg, model, device, datasets=None, table=None) -> dict:
    table = table if table is not None else split_instances(cfg, 'val')
    if datasets is not None:
        table = table.select(np.isin(table.dataset, datasets))
    kpts, scores = predict_model(model, table, device)
    return evaluate_predictions(cfg, table, kpts, scores, union_mask(model.skeleton_name), datasets)

"""Validation wiring: predictions on the val split's un-augmented crops (and their mirrors: the flip test), scored with the field's metrics.

Predictions are keypoints of the run's union skeleton in image pixels; `covered` says which joints the
predictor has (a COCO teacher has no head_top). Metrics per dataset, by its format: OKS AP (pycocotools,
with the dataset's own sigmas) for COCO-format datasets (COCO, AI Challenger), PCKh for MPII-type ones
(head boxes needed), and on datasets with a full truth (the synthetic twins: every union joint) PCK
split into the joints the dataset annotates and the joints it lacks.
"""
from __future__ import annotations

import numpy as np

from data.datasets import dataset_format, datasets_union
from data.skeletons import dataset_skeleton, model_skeleton, union_indices, union_mask
from data.truth import load_truth, truth_in_union, truth_rows
from outputs.evaluate import (coco_keypoint_eval, pck_union, pckh, predictions_to_coco_results,
                              topdown_instance_areas)
from pipeline.config import resolve
from pipeline.models import model_geometry
from pipeline.run import split_instances, val_truth_file
from teachers.inference import predict_model


def pckh_unavailable(ds, head_size: np.ndarray) -> str | None:
    """Why PCKh cannot be computed on an MPII-type dataset's val rows (None when it can): PCKh
    divides each error by the person's head size, which only the head-box file gives."""
    if not ds['val']['head_boxes_file']:
        return 'no head-box file'
    unknown = int((~np.isfinite(head_size)).sum())
    return f'head size unknown for {unknown} of {len(head_size)} instances' if unknown else None


def missing_head_boxes(cfg) -> list[str]:
    """The MPII-type datasets whose val split has no head-box file (their PCKh is not computed)."""
    return [name for name, ds in cfg.datasets.items()
            if ds['type'] == 'mpii' and 'val' in ds and not ds['val']['head_boxes_file']]


def warn_missing_head_boxes(cfg) -> None:
    """One line per such dataset, so a run on real data does not find out from an empty report column."""
    for name in missing_head_boxes(cfg):
        print(f'warning: datasets.{name}.val has no head_boxes_file: PCKh on {name} is not computed '
              '(the report says "not computed: no head-box file")')


def evaluate_predictions(cfg, table, kpts, scores, covered: np.ndarray, datasets=None) -> dict:
    """Metrics of predictions in the union skeleton on the val `table`, per dataset of the config. An
    MPII-type dataset whose PCKh cannot be computed says why under 'not_computed' (e.g. no head-box file)."""
    union = datasets_union(cfg.datasets)
    out = {}
    for name, ds in cfg.datasets.items():
        if datasets is not None and name not in datasets:
            continue
        rows = np.flatnonzero(table.dataset == name)
        if len(rows) == 0 or 'val' not in ds:
            continue
        m = {}
        skeleton = dataset_skeleton(ds['type'])
        own = union_indices(skeleton, union)
        if dataset_format(ds['type']) == 'coco' and covered[own].all():
            # mmpose's CocoMetric: rescoring and OKS-NMS with the padded input box as the instance area,
            # OKS with the dataset's sigmas (mmpose's AIC / CrowdPose metrics are CocoMetric so).
            areas = topdown_instance_areas(table.bbox[rows], model_geometry(cfg.student.config)['input_size'])
            results = predictions_to_coco_results(
                table.image_id[rows], kpts[rows][:, own], scores[rows][:, own],
                table.bbox_score[rows], areas, use_nms=True, sigmas=skeleton.sigmas)
            m['coco'] = coco_keypoint_eval(resolve(ds['val']['ann_file']), results, sigmas=skeleton.sigmas)
        unavailable = pckh_unavailable(ds, table.head_size[rows]) if dataset_format(ds['type']) == 'mpii' else None
        if unavailable:  # said in the metrics, so the report shows why the PCKh cells are empty
            m['not_computed'] = {'pckh': unavailable}
        elif dataset_format(ds['type']) == 'mpii' and covered[own].all():
            mpii_idx = own
            gt = table.keypoints[rows][:, mpii_idx]
            vis = table.keypoints_visible[rows][:, mpii_idx]
            m['pckh@0.5'] = pckh(kpts[rows][:, mpii_idx], gt, vis, table.head_size[rows], thr=0.5)
            m['pckh@0.1'] = pckh(kpts[rows][:, mpii_idx], gt, vis, table.head_size[rows], thr=0.1)
        truth_file = val_truth_file(ds)
        if truth_file is not None:
            truth = load_truth(truth_file)
            at = truth_rows(table.select(rows), truth)
            t_kpts, t_vis = truth_in_union(truth, union, at)
            t_head = truth['head_size'][at]
            annotated = table.annotated[rows][0]
            m['pck_truth'] = pck_union(kpts[rows], t_kpts, t_vis * covered[None], t_head, annotated, thr=0.5)
        out[name] = m
    return out


def evaluate_model(cfg, model, device, datasets=None, table=None, flip_test=None) -> dict:
    """Val metrics of `model`, with the flip test as the config's evaluation.flip_test unless `flip_test`."""
    table = table if table is not None else split_instances(cfg, 'val')
    if datasets is not None:
        table = table.select(np.isin(table.dataset, datasets))
    flip_test = cfg.evaluation.flip_test if flip_test is None else flip_test
    union = datasets_union(cfg.datasets)
    kpts, scores = predict_model(model, table, device, union, flip_test=flip_test)
    return evaluate_predictions(cfg, table, kpts, scores, union_mask(model_skeleton(model.skeleton_name, union), union),
                                datasets)

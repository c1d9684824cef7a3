"""Validation wiring: predictions on the val split's un-augmented crops (and their mirrors: the flip test), scored with the field's metrics.

Predictions are union-21 keypoints in image pixels; `covered` says which joints the predictor has
(a COCO teacher has no head_top). Metrics per dataset: COCO AP (pycocotools) for COCO-type
datasets, PCKh for MPII-type ones (head boxes needed), and on datasets with a full 21-joint truth
(the synthetic twins) PCK split into the joints the dataset annotates and the joints it lacks.
"""
from __future__ import annotations

import numpy as np

from data.skeletons import COCO17, MPII16, union_indices, union_mask
from data.truth import load_truth, truth_rows
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
        truth_file = val_truth_file(ds)
        if truth_file is not None:
            truth = load_truth(truth_file)
            at = truth_rows(table.select(rows), truth)
            t_kpts, t_vis, t_head = truth['keypoints21'][at], truth['visible21'][at], truth['head_size'][at]
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
    kpts, scores = predict_model(model, table, device, flip_test=flip_test)
    return evaluate_predictions(cfg, table, kpts, scores, union_mask(model.skeleton_name), datasets)

"""Evaluators: COCO-style keypoint AP (pycocotools, any COCO-format skeleton with its sigmas), MPII PCKh,
and PCK on the synthetic twins' full truth (every union joint).

Pure functions of predictions and annotations. The only I/O is reading the COCO ground-truth json
(pycocotools needs it) and writing the standard COCO results json.

Conventions follow mmpose 1.x so numbers are comparable with published RTMPose results:
- instance score = box score x mean of the keypoint scores above 0.2 (CocoMetric score_mode='bbox_keypoint');
- OKS-NMS per image at 0.9 (CocoMetric nms_mode='oks_nms'), OKS over all joints with the instances' areas;
- PCKh mean over the 14 MPII joints other than pelvis and thorax, weighted by joint counts (MpiiPCKAccuracy).
"""
from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from data.skeletons import COCO17_SIGMAS, MPII16_NAMES
from data.files import atomic_write_text

COCO_STAT_NAMES = ('AP', 'AP50', 'AP75', 'APm', 'APl', 'AR', 'AR50', 'AR75', 'ARm', 'ARl')
OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # the COCO keypoint AP thresholds


# ----------------------------------------------------------------------------------------------
# COCO keypoint AP
# ----------------------------------------------------------------------------------------------

def _load_coco_gt(gt_ann: str | Path | dict):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(gt_ann, dict):
            coco = COCO()
            coco.dataset = gt_ann
            coco.createIndex()
        else:
            path = Path(gt_ann)
            if not path.is_file():
                raise FileNotFoundError(f'COCO ground-truth file {path} does not exist')
            try:
                coco = COCO(str(path))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f'COCO ground-truth file {path} is not a COCO annotation json: {e}') from e
    return coco


def _check_results(results: list[dict], coco, where: str) -> None:
    known = set(coco.getImgIds())
    for i, r in enumerate(results):
        missing = {'image_id', 'keypoints', 'score'} - set(r)
        if missing:
            raise ValueError(f'COCO result {i} lacks {sorted(missing)} (evaluating against {where})')
        if len(r['keypoints']) % 3:
            raise ValueError(f'COCO result {i} has {len(r["keypoints"])} keypoint values, not a multiple of 3')
        if r['image_id'] not in known:
            raise ValueError(f'COCO result {i} has image_id {r["image_id"]} which is not in {where}')


def coco_keypoint_eval(gt_ann_file: str | Path | dict, results: list[dict],
                       sigmas: np.ndarray | None = None) -> dict[str, float]:
    """COCO keypoint AP/AR of `results` against the ground truth, through pycocotools' COCOeval.

    gt_ann_file: path of a COCO person-keypoints json (or the already loaded dict).
    results: COCO results format, one dict per predicted person: image_id, category_id (1),
        keypoints (flat K*3: x, y, score), score.
    sigmas: per-joint OKS sigmas; the official COCO-17 sigmas by default.
    Returns {AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl}; -1 where the ground truth has no
    person in that area range (COCOeval's convention). An empty result list scores 0 where there is
    ground truth. pycocotools' prints are swallowed.
    """
    from pycocotools.cocoeval import COCOeval

    where = 'the in-memory ground truth' if isinstance(gt_ann_file, dict) else str(gt_ann_file)
    coco_gt = _load_coco_gt(gt_ann_file)
    _check_results(results, coco_gt, where)
    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            # loadRes mutates its input (adds id, area, bbox); give it copies.
            coco_dt = coco_gt.loadRes([dict(r, category_id=r.get('category_id', 1)) for r in results])
        else:
            # loadRes cannot take an empty list; an empty detection set evaluates to AP 0.
            from pycocotools.coco import COCO
            coco_dt = COCO()
            coco_dt.dataset = {'images': list(coco_gt.dataset.get('images', [])),
                               'categories': list(coco_gt.dataset.get('categories', [])),
                               'annotations': []}
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, iouType='keypoints')
        coco_eval.params.useSegm = None
        coco_eval.params.kpt_oks_sigmas = np.asarray(COCO17_SIGMAS if sigmas is None else sigmas,
                                                     dtype=np.float64)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, coco_eval.stats)}


def write_coco_results(path: str | Path, results: list[dict]) -> Path:
    """Write COCO results json (list of {image_id, category_id, keypoints, score}) atomically."""
    clean = [{'image_id': int(r['image_id']), 'category_id': int(r.get('category_id', 1)),
              'keypoints': [float(v) for v in r['keypoints']], 'score': float(r['score'])}
             for r in results]
    return atomic_write_text(path, json.dumps(clean))


def build_coco_gt(image_ids: np.ndarray, keypoints: np.ndarray, visible: np.ndarray,
                  bbox_xyxy: np.ndarray, areas: np.ndarray, annotation_ids: np.ndarray | None = None,
                  image_sizes: dict | None = None) -> dict:
    """A COCO person-keypoints ground-truth dict (for coco_keypoint_eval) from arrays, e.g. a
    synthetic twin's instances. keypoints (N,K,2), visible (N,K) 0/1 -> v=2 where visible, else 0."""
    keypoints = np.asarray(keypoints, np.float64)
    visible = np.asarray(visible) > 0
    n, k = visible.shape
    ids = np.arange(1, n + 1) if annotation_ids is None else np.asarray(annotation_ids)
    anns = []
    for i in range(n):
        x1, y1, x2, y2 = (float(v) for v in bbox_xyxy[i])
        flat = np.concatenate([np.where(visible[i, :, None], keypoints[i], 0.0),
                               np.where(visible[i], 2.0, 0.0)[:, None]], axis=1).ravel()
        anns.append({'id': int(ids[i]), 'image_id': int(image_ids[i]), 'category_id': 1, 'iscrowd': 0,
                     'bbox': [x1, y1, x2 - x1, y2 - y1], 'area': float(areas[i]),
                     'num_keypoints': int(visible[i].sum()), 'keypoints': flat.tolist()})
    images = []
    for img in sorted({int(i) for i in image_ids}):
        w, h = (image_sizes or {}).get(img, (0, 0))
        images.append({'id': img, 'width': int(w), 'height': int(h), 'file_name': f'{img}.jpg'})
    return {'images': images, 'annotations': anns,
            'categories': [{'id': 1, 'name': 'person', 'supercategory': 'person'}]}


# ----------------------------------------------------------------------------------------------
# Top-down scoring and OKS-NMS (mmpose CocoMetric)
# ----------------------------------------------------------------------------------------------

def topdown_rescore(keypoint_scores: np.ndarray, box_scores: np.ndarray, thr: float = 0.2) -> np.ndarray:
    """Instance score = box score x mean of the keypoint scores > thr (0 if none passes).
    keypoint_scores (N,K), box_scores (N,) -> (N,) float64."""
    keypoint_scores = np.asarray(keypoint_scores, np.float64)
    box_scores = np.asarray(box_scores, np.float64)
    if keypoint_scores.ndim != 2 or box_scores.shape != keypoint_scores.shape[:1]:
        raise ValueError(f'topdown_rescore: keypoint_scores {keypoint_scores.shape} and box_scores '
                         f'{box_scores.shape} must be (N,K) and (N,)')
    valid = keypoint_scores > thr
    count = valid.sum(1)
    mean = np.where(count > 0, (keypoint_scores * valid).sum(1) / np.maximum(count, 1), 0.0)
    return box_scores * mean


def oks_matrix(keypoints_a: np.ndarray, areas_a: np.ndarray, keypoints_b: np.ndarray, areas_b: np.ndarray,
               sigmas: np.ndarray | None = None) -> np.ndarray:
    """OKS between every pair, as mmpose's oks_iou (all joints, mean of the two areas):
    keypoints (A,K,2), (B,K,2), areas (A,), (B,) -> (A,B)."""
    sigmas = np.asarray(COCO17_SIGMAS if sigmas is None else sigmas, np.float64)
    a = np.asarray(keypoints_a, np.float64)
    b = np.asarray(keypoints_b, np.float64)
    variances = (2 * sigmas) ** 2
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (A,B,K)
    mean_area = (np.asarray(areas_a, np.float64)[:, None] + np.asarray(areas_b, np.float64)[None, :]) / 2
    e = d2 / variances / (mean_area[..., None] + np.spacing(1)) / 2
    return np.exp(-e).mean(-1)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thr: float = 0.9,
            sigmas: np.ndarray | None = None) -> np.ndarray:
    """Greedy OKS-NMS over the instances of ONE image (mmpose oks_nms): take the best-scoring
    instance, drop every remaining one whose OKS with it is > thr, repeat.
    keypoints (M,K,2), scores (M,), areas (M,) -> kept indices, best first."""
    keypoints = np.asarray(keypoints, np.float64)
    scores = np.asarray(scores, np.float64)
    areas = np.asarray(areas, np.float64)
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    oks = oks_matrix(keypoints, areas, keypoints, areas, sigmas)
    order = scores.argsort()[::-1]  # same tie order as mmpose
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        order = order[1:][oks[i, order[1:]] <= thr]
    return np.asarray(keep, np.int64)


def topdown_instance_areas(bbox_xyxy: np.ndarray, input_size: tuple[int, int], padding: float = 1.25) -> np.ndarray:
    """The instance areas mmpose's CocoMetric gives OKS-NMS in top-down mode: the product of the
    bbox scale after GetBBoxCenterScale (padding 1.25) and TopdownAffine's aspect fix to the input
    (w, h). bbox_xyxy (N,4) -> (N,)."""
    box = np.asarray(bbox_xyxy, np.float64).reshape(-1, 4)
    w = (box[:, 2] - box[:, 0]) * padding
    h = (box[:, 3] - box[:, 1]) * padding
    aspect = input_size[0] / input_size[1]
    w, h = np.where(w > h * aspect, w, h * aspect), np.where(w > h * aspect, w / aspect, h)
    return w * h


def predictions_to_coco_results(image_ids: np.ndarray, keypoints: np.ndarray, keypoint_scores: np.ndarray,
                                box_scores: np.ndarray, areas: np.ndarray, use_nms: bool = True,
                                score_thr: float = 0.2, nms_thr: float = 0.9,
                                sigmas: np.ndarray | None = None, category_id: int = 1) -> list[dict]:
    """Top-down predictions -> COCO results, scored and (optionally) OKS-NMS'd per image as mmpose.

    keypoints (N,K,2) image pixels; keypoint_scores (N,K); box_scores (N,) (1 for GT boxes);
    areas (N,): the instance area used by OKS-NMS only (mmpose: topdown_instance_areas of the boxes).
    mmpose's CocoMetric runs OKS-NMS by default with GT boxes too; with one box per person it rarely
    removes anything, with detector boxes it removes duplicate detections.
    """
    image_ids = np.asarray(image_ids)
    keypoints = np.asarray(keypoints, np.float64)
    keypoint_scores = np.asarray(keypoint_scores, np.float64)
    n = len(image_ids)
    for name, arr in (('keypoints', keypoints), ('keypoint_scores', keypoint_scores),
                      ('box_scores', np.asarray(box_scores)), ('areas', np.asarray(areas))):
        if len(arr) != n:
            raise ValueError(f'predictions_to_coco_results: {name} has {len(arr)} rows, image_ids has {n}')
    scores = topdown_rescore(keypoint_scores, box_scores, score_thr)
    areas = np.asarray(areas, np.float64)
    by_image = defaultdict(list)
    for i, img in enumerate(image_ids.tolist()):
        by_image[img].append(i)
    results = []
    for img in sorted(by_image):
        rows = np.asarray(by_image[img])
        if use_nms:
            rows = rows[oks_nms(keypoints[rows], scores[rows], areas[rows], nms_thr, sigmas)]
        for i in rows:
            flat = np.concatenate([keypoints[i], keypoint_scores[i][:, None]], axis=1).ravel()
            results.append({'image_id': int(img), 'category_id': int(category_id),
                            'keypoints': flat.tolist(), 'score': float(scores[i])})
    return results


# ----------------------------------------------------------------------------------------------
# PCK
# ----------------------------------------------------------------------------------------------

def normalized_distances(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """|pred - gt| / norm per joint, NaN where not valid. (N,K,2), (N,K,2), (N,K), (N,) -> (N,K)."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    valid = np.asarray(valid, bool)
    norm = np.asarray(norm, np.float64)
    if pred.shape != gt.shape or pred.shape[:2] != valid.shape or norm.shape != pred.shape[:1]:
        raise ValueError(f'PCK inputs disagree: pred {pred.shape}, gt {gt.shape}, visible {valid.shape}, '
                         f'norm {norm.shape}')
    if not np.all(np.isfinite(norm)) or np.any(norm < 0):
        bad = np.flatnonzero(~np.isfinite(norm) | (norm < 0))
        raise ValueError(f'PCK normaliser is unknown or negative for {len(bad)} instance(s), first at row '
                         f'{bad[0]} ({norm[bad[0]]}); select instances with a known normaliser')
    # mmpose drops instances whose normaliser is 0
    valid = valid & (norm[:, None] > 0)
    dist = np.linalg.norm(pred - gt, axis=-1) / np.where(norm > 0, norm, 1.0)[:, None]
    return np.where(valid, dist, np.nan)


def _pck_per_joint(dist: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of valid joints with distance < thr (strict, as mmpose), per joint, and the counts."""
    valid = ~np.isnan(dist)
    counts = valid.sum(0)
    hits = (np.where(valid, dist, np.inf) < thr).sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan), counts


# MPII evaluation table: group name -> joint names (mmpose MpiiPCKAccuracy; 'Head' is the head top).
MPII_GROUPS = {
    'Head': ('head_top',),
    'Shoulder': ('left_shoulder', 'right_shoulder'),
    'Elbow': ('left_elbow', 'right_elbow'),
    'Wrist': ('left_wrist', 'right_wrist'),
    'Hip': ('left_hip', 'right_hip'),
    'Knee': ('left_knee', 'right_knee'),
    'Ankle': ('left_ankle', 'right_ankle'),
}
# Excluded from the reported mean, as in the MPII toolkit and mmpose.
MPII_MEAN_EXCLUDES = ('pelvis', 'thorax')


def pckh(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_size: np.ndarray,
         thr: float = 0.5, pred_offset: float = 0.0) -> dict:
    """MPII PCKh at one threshold, MPII-16 joint order. Fractions in [0, 1] (mmpose prints x100).

    pred, gt (N,16,2) pixels in the same convention; visible (N,16); head_size (N,) = 0.6 x head box
    diagonal (must be known: select MPII rows; 0 drops the instance as in mmpose). pred_offset is
    added to pred first: mmpose compares 0-based predictions with MPII's 1-based json joints by
    adding 1; pass 1.0 only when gt is the raw MPII json coordinates.
    A joint is correct when |pred - gt| / head_size < thr (strict, as mmpose).
    Returns thr; per_joint (16,) (NaN where a joint never counts); counts (16,); mean: joint-count
    weighted over the 14 joints other than pelvis and thorax (MPII "Mean"); groups {Head, Shoulder,
    Elbow, Wrist, Hip, Knee, Ankle}: mean of left and right as mmpose's MpiiPCKAccuracy.
    """
    pred = np.asarray(pred, np.float64)
    if pred.ndim != 3 or pred.shape[1:] != (16, 2):
        raise ValueError(f'pckh expects MPII-16 keypoints (N,16,2), got {pred.shape}')
    dist = normalized_distances(pred + pred_offset, gt, np.asarray(visible) > 0, head_size)
    per_joint, counts = _pck_per_joint(dist, thr)
    weights = np.where([n not in MPII_MEAN_EXCLUDES for n in MPII16_NAMES], counts, 0).astype(np.float64)
    mean = float((np.nan_to_num(per_joint) * weights).sum() / weights.sum()) if weights.sum() else float('nan')
    groups = {g: float(np.mean([per_joint[MPII16_NAMES.index(n)] for n in names]))
              for g, names in MPII_GROUPS.items()}
    return {'thr': thr, 'per_joint': per_joint, 'counts': counts, 'mean': mean, 'groups': groups}


def mpii_pckh_table(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_size: np.ndarray,
                    pred_offset: float = 0.0) -> dict[str, float]:
    """The MPII evaluation table as mmpose reports it (fractions, not percent):
    Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle and Mean at PCKh@0.5, and Mean@0.1."""
    at_05 = pckh(pred, gt, visible, head_size, 0.5, pred_offset)
    at_01 = pckh(pred, gt, visible, head_size, 0.1, pred_offset)
    return {**at_05['groups'], 'Mean': at_05['mean'], 'Mean@0.1': at_01['mean']}


def pck_union(pred: np.ndarray, truth: np.ndarray, visible: np.ndarray, norm: np.ndarray,
              annotated: np.ndarray, thr: float = 0.5) -> dict:
    """PCK on the synthetic twins, where the full truth is known for every instance and union joint.

    pred, truth (N,K,2) in the union; visible (N,K): joints that count (in the truth, usually all in-image joints);
    norm (N,): distance normaliser in pixels, chosen by the caller. The pipeline uses the head size
    computed from the truth the MPII way (0.6 x head box diagonal), so PCK@0.5 reads as PCKh@0.5 for
    both twins; a bbox size (sqrt of box area) works too, the threshold then means something else.
    annotated (N,K) or (K,) bool: joints the instance's dataset annotates.
    Returns all / annotated / lacking: fraction of counted joints within thr x norm over all joints,
    over the joints the dataset annotates, over the joints it lacks (those only the union teaches);
    per_joint (K,) and the matching counts.
    """
    pred = np.asarray(pred, np.float64)
    if pred.ndim != 3 or pred.shape[2] != 2 or pred.shape != np.shape(truth):
        raise ValueError(f'pck_union expects keypoints (N,K,2) as the truth {np.shape(truth)}, got {pred.shape}')
    annotated = np.broadcast_to(np.asarray(annotated, bool), pred.shape[:2])
    dist = normalized_distances(pred, truth, np.asarray(visible) > 0, norm)
    per_joint, counts = _pck_per_joint(dist, thr)

    def frac(mask):
        d = dist[mask]
        d = d[~np.isnan(d)]
        return float((d < thr).mean()) if len(d) else float('nan')

    return {'thr': thr, 'all': frac(np.ones_like(annotated)), 'annotated': frac(annotated),
            'lacking': frac(~annotated), 'per_joint': per_joint, 'counts': counts,
            'n_annotated': int((~np.isnan(dist) & annotated).sum()),
            'n_lacking': int((~np.isnan(dist) & ~annotated).sum())}


def headline_metric(val: dict, key: str) -> float | None:
    """One number of a val record (stages.evaluation's per-dataset metrics) by 'DATASET/METRIC', METRIC
    one of AP (COCO AP), PCKh (PCKh@0.5 mean), pck_all (PCK on the full truth, all joints); None when
    the record does not have it. What evaluation.save_best ranks checkpoints by."""
    dataset, metric = key.split('/')
    m = val.get(dataset, {})
    value = {'AP': (m.get('coco') or {}).get('AP'), 'PCKh': (m.get('pckh@0.5') or {}).get('mean'),
             'pck_all': (m.get('pck_truth') or {}).get('all')}[metric]
    return None if value is None or value != value else float(value)

"""COCO-format person keypoints (person_keypoints_*.json) -> InstanceTable, as mmpose 1.3's CocoDataset (top-down).

Any skeleton: COCO, AI Challenger and CrowdPose ship their keypoints in this format, each annotation
holding its dataset's K joints (K x 3 numbers) in that dataset's order (data.skeletons).

Ground-truth instances follow BaseCocoStyleDataset: images in file order, each image's annotations in
file order; the box is xywh clipped to [0, width-1] x [0, height-1]; kept when not crowd, num_keypoints > 0,
the clipped box has w, h > 0 and some keypoint coordinate is > 0 (the annotations dropped so are
counted as filtered in the RecordCheck, bad records as skipped). Visible = COCO v > 0.
With a detection file (val): one instance per person detection (category_id 1) in the COCO results
format, box xywh -> xyxy unclipped, bbox_score = detection score, keypoints zero and not visible;
instance_key is the detection's index among the person detections (mmpose's id), kept under a score
threshold filter (mmpose's filter_cfg bbox_score_thr).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from data.instances import InstanceTable
from data.skeletons import COCO17, Skeleton, to_union, union_mask
from data.validation import RecordCheck, image_inside_root


class CocoFormatError(ValueError):
    pass


def _load_json(path, what: str):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(f'{path}: not valid JSON ({e})') from None


def _table(rows: dict, n: int, skeleton: Skeleton, union: Skeleton) -> InstanceTable:
    k = union.num_joints
    return InstanceTable(
        dataset=np.full(n, 'coco', dtype='<U8'),
        image_path=np.array(rows['image_path'], dtype=str) if n else np.zeros(0, '<U1'),
        image_id=np.array(rows['image_id'], np.int64).reshape(n),
        instance_key=np.array(rows['instance_key'], np.int64).reshape(n),
        bbox=np.array(rows['bbox'], np.float32).reshape(n, 4),
        bbox_score=np.array(rows['bbox_score'], np.float32).reshape(n),
        keypoints=np.array(rows['keypoints'], np.float32).reshape(n, k, 2),
        keypoints_visible=np.array(rows['keypoints_visible'], np.float32).reshape(n, k),
        annotated=np.tile(union_mask(skeleton, union), (n, 1)),
        head_size=np.full(n, np.nan, np.float32),
        area=np.array(rows['area'], np.float32).reshape(n),
    )


def _images_by_id(data, ann_file) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get('images'), list):
        raise CocoFormatError(f'{ann_file}: expected a COCO annotation object with an "images" list')
    images = {}
    for i, img in enumerate(data['images']):
        try:
            images[int(img['id'])] = (str(img['file_name']), float(img['width']), float(img['height']))
        except (KeyError, TypeError, ValueError) as e:
            raise CocoFormatError(f'{ann_file}: images[{i}] lacks a valid id/file_name/width/height ({e!r})') from None
    return images


def _gt_instances(data, ann_file, image_root, check: RecordCheck, skeleton: Skeleton, union: Skeleton) -> InstanceTable:
    k = skeleton.num_joints
    images = _images_by_id(data, ann_file)
    anns = data.get('annotations')
    if not isinstance(anns, list):
        raise CocoFormatError(f'{ann_file}: expected an "annotations" list')
    by_image: dict[int, list] = {k: [] for k in images}
    for j, ann in enumerate(anns):
        try:
            by_image[int(ann['image_id'])].append((j, ann))
        except (KeyError, TypeError, ValueError):
            check.skip(f'annotations[{j}] (id {ann.get("id")!r})', 'unknown image_id')
    rows = {k: [] for k in ('image_path', 'image_id', 'instance_key', 'bbox', 'bbox_score', 'keypoints',
                            'keypoints_visible', 'area')}
    for img_id, (file_name, img_w, img_h) in images.items():
        if by_image[img_id] and image_inside_root(image_root, file_name) is None:
            for j, ann in by_image[img_id]:
                check.skip(f'annotations[{j}] (id {ann.get("id")!r}, {file_name})', 'image path outside the image root')
            continue
        for j, ann in by_image[img_id]:
            if 'bbox' not in ann or 'keypoints' not in ann:
                check.filter('no bbox or keypoints')  # mmpose skips these
                continue
            try:
                x, y, w, h = (float(v) for v in ann['bbox'])
                kps = np.array(ann['keypoints'], dtype=np.float32).reshape(k, 3)
                ann_id = int(ann['id'])
            except (KeyError, TypeError, ValueError) as e:
                raise CocoFormatError(f'{ann_file}: annotations[{j}] (id {ann.get("id")!r}) has a malformed '
                                      f'bbox/keypoints/id ({e}); expected bbox [x, y, w, h] and '
                                      f'{k * 3} keypoint numbers ({skeleton.name})') from None
            box = np.array([np.clip(x, 0, img_w - 1), np.clip(y, 0, img_h - 1),
                            np.clip(x + w, 0, img_w - 1), np.clip(y + h, 0, img_h - 1)], dtype=np.float32)
            if np.isnan(kps).all():  # coordinates and visibility: no number to read, whatever num_keypoints says
                check.skip(f'annotations[{j}] (id {ann_id})', 'keypoints all NaN')
                continue
            num_keypoints = ann['num_keypoints'] if 'num_keypoints' in ann else np.count_nonzero(kps[:, :2].max(1))
            if ann.get('iscrowd', 0) or num_keypoints == 0:
                # mmpose's own filter: not a keypoint instance, nothing wrong with the record
                check.filter('crowd' if ann.get('iscrowd', 0) else 'num_keypoints 0')
                continue
            labelled = kps[:, 2] > 0
            reason = ('non-finite box' if not np.isfinite([x, y, w, h]).all() else
                      'zero-area or negative box' if w <= 0 or h <= 0 else
                      'box outside the image' if box[2] - box[0] <= 0 or box[3] - box[1] <= 0 else
                      'non-finite keypoint' if not np.isfinite(kps[labelled]).all() else
                      'labelled keypoint outside the image' if (
                          (kps[labelled, :2] < 0).any() or (kps[labelled, 0] > img_w).any()
                          or (kps[labelled, 1] > img_h).any()) else None)
            if reason:
                check.skip(f'annotations[{j}] (id {ann_id})', reason)
                continue
            if kps[:, :2].max() <= 0:
                check.filter('no keypoint coordinate > 0')  # mmpose's filter too
                continue
            area = ann['area'] if 'area' in ann else max((box[2] - box[0]) * (box[3] - box[1]) * 0.53, 1.0)
            rows['image_path'].append(os.path.join(image_root, file_name))
            rows['image_id'].append(img_id)
            rows['instance_key'].append(ann_id)
            rows['bbox'].append(box)
            rows['bbox_score'].append(1.0)
            rows['keypoints'].append(to_union(kps[None, :, :2], skeleton, union)[0])
            rows['keypoints_visible'].append(to_union((kps[None, :, 2] > 0).astype(np.float32), skeleton, union)[0])
            rows['area'].append(area)
    check.kept = len(rows['image_id'])
    return _table(rows, len(rows['image_id']), skeleton, union)


def read_detections(det_file) -> list[tuple[int, int, tuple, float]]:
    """The person detections (category_id 1) of a COCO results file, in file order: (index in the
    file, image_id, box (x, y, w, h), score). The one parser of a detection file (evaluation, predict)."""
    dets = _load_json(det_file, 'COCO detection file')
    if not isinstance(dets, list):
        raise CocoFormatError(f'{det_file}: expected a list of detections in the COCO results format')
    out = []
    for j, det in enumerate(dets):
        try:
            if int(det['category_id']) != 1:
                continue
            out.append((j, int(det['image_id']), tuple(float(v) for v in det['bbox'][:4]), float(det['score'])))
        except (KeyError, TypeError, ValueError) as e:
            raise CocoFormatError(f'{det_file}: detection [{j}] lacks a valid category_id/image_id/bbox/score '
                                  f'({e!r})') from None
        if len(out[-1][2]) != 4:
            raise CocoFormatError(f'{det_file}: detection [{j}] lacks a valid category_id/image_id/bbox/score '
                                  f'(bbox {det["bbox"]!r})')
    return out


def _det_instances(data, ann_file, image_root, det_file, det_score_thr, skeleton: Skeleton,
                   union: Skeleton) -> InstanceTable:
    images = _images_by_id(data, ann_file)
    rows = {k: [] for k in ('image_path', 'image_id', 'instance_key', 'bbox', 'bbox_score', 'keypoints',
                            'keypoints_visible', 'area')}
    det_id = 0
    for j, img_id, (x, y, w, h), score in read_detections(det_file):
        if img_id not in images:
            raise CocoFormatError(f'{det_file}: detection [{j}] refers to image_id {img_id}, '
                                  f'which is not in {ann_file}')
        key, det_id = det_id, det_id + 1
        if score < det_score_thr:
            continue
        rows['image_path'].append(os.path.join(image_root, images[img_id][0]))
        rows['image_id'].append(img_id)
        rows['instance_key'].append(key)
        rows['bbox'].append(np.array([x, y, x + w, y + h], np.float32))
        rows['bbox_score'].append(score)
        rows['keypoints'].append(np.zeros((union.num_joints, 2), np.float32))
        rows['keypoints_visible'].append(np.zeros(union.num_joints, np.float32))
        rows['area'].append(w * h)
    return _table(rows, len(rows['image_id']), skeleton, union)


def load_coco(ann_file, image_root, split_mode: str = 'train', det_file=None,
              det_score_thr: float = 0.0, check: RecordCheck | None = None, skeleton: Skeleton = COCO17,
              union: Skeleton | None = None) -> InstanceTable:
    """Instances of a COCO-format keypoints file of `skeleton`'s joints, in `union` (default: the
    skeleton itself) (split_mode 'train' or 'val'). A det_file (val only)
    replaces the ground-truth boxes with person detections. Bad records (unknown image, image outside
    `image_root`, non-finite / empty / off-image box, keypoints all NaN, non-finite or off-image
    labelled keypoints) are skipped and counted in `check`, or raise in strict mode; the ones mmpose
    filters (crowd, num_keypoints 0, ...) are counted in `check.filtered`."""
    check = check if check is not None else RecordCheck(ann_file)
    if split_mode not in ('train', 'val'):
        raise ValueError(f"load_coco: split_mode must be 'train' or 'val', got {split_mode!r}")
    if det_file is not None and split_mode != 'val':
        raise ValueError(f'load_coco: detections ({det_file}) are only used for the val split')
    union = union if union is not None else skeleton
    data = _load_json(ann_file, 'COCO annotation file')
    if det_file is not None:
        table = _det_instances(data, ann_file, str(image_root), det_file, det_score_thr, skeleton, union)
        check.kept = len(table)
        return table
    return _gt_instances(data, ann_file, str(image_root), check, skeleton, union)

"""One split of every configured dataset, as one instance table in the union of their skeletons.

A dataset's `type` names its skeleton (data.skeletons.DATASET_SKELETONS) and its file format: COCO-format
keypoints (COCO, AI Challenger, CrowdPose) or MPII's. The evaluators follow the format:
OKS AP with the type's sigmas for COCO-format sets, PCKh for MPII."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from data.instances import InstanceTable
from data.skeletons import Skeleton, dataset_skeleton, derive_union

# Each dataset type's annotation format.
DATASET_FORMATS = {'coco': 'coco', 'aic': 'coco', 'crowdpose': 'coco', 'mpii': 'mpii'}
DATASET_TYPES = tuple(DATASET_FORMATS)


def dataset_format(dataset_type: str) -> str:
    if dataset_type not in DATASET_FORMATS:
        raise ValueError(f'unknown dataset type {dataset_type!r}; known: {", ".join(DATASET_TYPES)}')
    return DATASET_FORMATS[dataset_type]


def datasets_union(datasets: dict) -> Skeleton:
    """The union skeleton of the config's `datasets` (config order): what the student predicts."""
    for name, ds in datasets.items():
        dataset_format(ds['type'])
    return derive_union([ds['type'] for ds in datasets.values()])


def load_split(datasets: dict, split: str, resolve: Callable[[str], Path] = Path, strict: bool = False,
               checks: list | None = None) -> InstanceTable:
    """`datasets` is the pipeline config's `datasets` dict; `resolve` turns config paths into files.

    Datasets are concatenated in config order; the instance order inside each follows its file, so
    the table (and every cache row index) is the same on every machine. Bad records are skipped and
    counted per file (data.validation.RecordCheck, appended to `checks`), or raise when `strict`; a
    file that yields no usable instance is an error.
    """
    from data.validation import RecordCheck
    from data.coco import load_coco
    from data.mpii import load_mpii

    union = datasets_union(datasets)
    tables = []
    for name, ds in datasets.items():
        if split not in ds:
            continue
        s = ds[split]
        check = RecordCheck(resolve(s['ann_file']), strict=strict)
        val = split == 'val'  # only a val split has detections and head boxes
        if dataset_format(ds['type']) == 'coco':
            det = s['det_file'] if val else None
            t = load_coco(resolve(s['ann_file']), resolve(s['image_root']), split_mode='val' if val else 'train',
                          det_file=resolve(det) if det else None, det_score_thr=s['det_score_thr'] if val else 0.0,
                          check=check, skeleton=dataset_skeleton(ds['type']), union=union)
        else:
            heads = s['head_boxes_file'] if val else None
            t = load_mpii(resolve(s['ann_file']), resolve(s['image_root']),
                          head_boxes_file=resolve(heads) if heads else None, check=check, union=union)
        if len(t) == 0:
            raise ValueError(f'{check.path}: no usable instance ({check.summary()})')
        if checks is not None:
            checks.append(check)
        t.dataset = np.full(len(t), name)
        tables.append(t)
    if not tables:
        raise ValueError(f'no dataset in the config has a {split!r} split')
    return InstanceTable.concat(tables)


def dataset_indices(table: InstanceTable, names: list[str]) -> np.ndarray:
    """(N,) index of each row's dataset in `names` (the config order): part of the view seed."""
    lookup = {n: i for i, n in enumerate(names)}
    return np.array([lookup[d] for d in table.dataset], dtype=np.int64)

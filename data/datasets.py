"""One split of every configured dataset, as one instance table (union-21)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from data.instances import InstanceTable


def load_split(datasets: dict, split: str, resolve: Callable[[str], Path] = Path) -> InstanceTable:
    """`datasets` is the pipeline config's `datasets` dict; `resolve` turns config paths into files.

    Datasets are concatenated in config order; the instance order inside each follows its file, so
    the table (and every cache row index) is the same on every machine.
    """
    from data.coco import load_coco
    from data.mpii import load_mpii

    tables = []
    for name, ds in datasets.items():
        if split not in ds:
            continue
        s = ds[split]
        if ds['type'] == 'coco':
            det = s.get('det_file')
            t = load_coco(resolve(s['ann_file']), resolve(s['image_root']),
                          split_mode='train' if split == 'train' else 'val',
                          det_file=resolve(det) if det else None,
                          det_score_thr=float(s.get('det_score_thr', 0.0)))
        else:
            heads = s.get('head_boxes_file')
            t = load_mpii(resolve(s['ann_file']), resolve(s['image_root']),
                          head_boxes_file=resolve(heads) if heads else None)
        t.dataset = np.full(len(t), name)
        tables.append(t)
    if not tables:
        raise ValueError(f'no dataset in the config has a {split!r} split')
    return InstanceTable.concat(tables)


def dataset_indices(table: InstanceTable, names: list[str]) -> np.ndarray:
    """(N,) index of each row's dataset in `names` (the config order): part of the view seed."""
    lookup = {n: i for i, n in enumerate(names)}
    return np.array([lookup[d] for d in table.dataset], dtype=np.int64)

"""Reading the synthetic twins' full truth (truth_{train,val}.npz: every joint of the figure model, named)
back, matching it to an instance table and gathering a union's joints from it. numpy only: evaluation
reads the truth without the renderer."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.instances import InstanceTable
from data.skeletons import Skeleton

TRUTH_KEYS = ('instance_key', 'image_id', 'joint_names', 'keypoints', 'visible', 'in_image', 'head_size', 'body_box')
# Optional: 'activity' (str per person: what the figure is doing; files written before it lack it).

def load_truth(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'synthetic truth file not found: {path}')
    with np.load(path) as z:
        missing = [k for k in TRUTH_KEYS if k not in z.files]
        if missing:
            raise ValueError(f'{path}: not a synthetic truth file, missing arrays {missing}')
        return {k: z[k] for k in z.files}


def truth_rows(table: InstanceTable, truth: dict) -> np.ndarray:
    """Index into the truth arrays of each table row, matched by instance_key. Raises if a row has no truth."""
    keys, wanted = truth['instance_key'], np.asarray(table.instance_key)
    order = np.argsort(keys, kind='stable')
    pos = np.minimum(np.searchsorted(keys[order], wanted), max(len(keys) - 1, 0))
    found = keys[order][pos] == wanted if len(keys) else np.zeros(len(wanted), bool)
    if not np.all(found):
        raise KeyError(f'{int((~found).sum())} instances have no synthetic truth (instance_key e.g. '
                       f'{wanted[~found][:5].tolist()}); was the table loaded from the truth file\'s split?')
    return order[pos]



def truth_in_union(truth: dict, union: Skeleton, rows=slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints (n, K, 2), visible (n, K)) of the truth rows `rows`, gathered into `union` by joint name."""
    names = [str(n) for n in truth['joint_names']]
    missing = [n for n in union.joint_names if n not in names]
    if missing:
        raise KeyError(f'the synthetic truth has no joints {missing} (it has {names})')
    idx = [names.index(n) for n in union.joint_names]
    return truth['keypoints'][rows][:, idx], truth['visible'][rows][:, idx]

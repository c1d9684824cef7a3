"""Predictions table in HDF5: one row per instance, the student's keypoints (the run's union) in image pixels.

Layout (all datasets share the first axis N):
  dataset       (N,) utf-8 str      which dataset the instance comes from ('coco', 'mpii', twin name)
  image_id      (N,) int64
  instance_key  (N,) int64          COCO annotation id / MPII row index (joins with the instance table)
  bbox          (N,4) float32       x1, y1, x2, y2 box the crop was taken from
  keypoints     (N,K,2) float32     predicted x, y
  scores        (N,K) float32       per-joint confidence (SimCC max)
File attributes: joint_names, units, skeleton (name), skeleton_links (L,2) joint index pairs,
format_version. Written to a temporary file and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from data.files import atomic_write

UNITS = 'pixels, image coordinates, x right y down'
FORMAT_VERSION = 1
_STR = h5py.string_dtype('utf-8')


def write_predictions_h5(path: str | Path, dataset: np.ndarray, image_id: np.ndarray, instance_key: np.ndarray,
                         bbox: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                         joint_names: tuple[str, ...], skeleton_links: tuple[tuple[int, int], ...] = (),
                         skeleton_name: str = 'unknown', attrs: dict | None = None) -> Path:
    """Write the predictions table atomically. `attrs` adds free-form file attributes (run id, config...)."""
    path = Path(path)
    n = len(dataset)
    keypoints = np.asarray(keypoints, np.float32)
    scores = np.asarray(scores, np.float32)
    k = len(joint_names)
    columns = {'dataset': np.asarray(dataset).astype(str).astype(object),
               'image_id': np.asarray(image_id, np.int64), 'instance_key': np.asarray(instance_key, np.int64),
               'bbox': np.asarray(bbox, np.float32), 'keypoints': keypoints, 'scores': scores}
    expected = {'bbox': (n, 4), 'keypoints': (n, k, 2), 'scores': (n, k)}
    for name, col in columns.items():
        want = expected.get(name, (n,))
        if col.shape != want:
            raise ValueError(f'{path}: predictions column {name!r} has shape {col.shape}, expected {want}')

    def write(tmp):
        with h5py.File(tmp, 'w') as f:
            for name, col in columns.items():
                if name == 'dataset':
                    f.create_dataset(name, data=col, dtype=_STR)
                else:
                    f.create_dataset(name, data=col, compression='gzip' if col.ndim > 1 else None)
            f.attrs['joint_names'] = np.array(joint_names, dtype=object).astype(_STR)
            f.attrs['units'] = UNITS
            f.attrs['skeleton'] = skeleton_name or 'unknown'
            f.attrs['skeleton_links'] = np.asarray(skeleton_links, np.int64).reshape(-1, 2)
            f.attrs['format_version'] = FORMAT_VERSION
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
    return atomic_write(path, write)


def read_predictions_h5(path: str | Path) -> dict:
    """Read a predictions file back: the columns as numpy arrays (dataset as str) and the file
    attributes under 'attrs' (joint_names as a tuple of str)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'predictions file {path} does not exist')
    out = {}
    with h5py.File(path, 'r') as f:
        for name in ('dataset', 'image_id', 'instance_key', 'bbox', 'keypoints', 'scores'):
            if name not in f:
                raise ValueError(f'{path}: not a predictions file, column {name!r} is missing')
            out[name] = f[name].asstr()[()] if name == 'dataset' else f[name][()]
        attrs = {}
        for key, value in f.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            attrs[key] = value
    out['dataset'] = np.asarray(out['dataset'], dtype=str)
    attrs['joint_names'] = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in attrs['joint_names'])
    out['attrs'] = attrs
    return out

"""The instance table: one row per person crop, every dataset mapped into the run's union skeleton
(data.skeletons.derive_union; K below is its number of joints).

A plain dataclass of aligned numpy arrays (column store), so it can be sliced, concatenated and
written to Zarr column by column without a dataframe library.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class InstanceTable:
    dataset: np.ndarray  # (N,) str: the dataset's name in the config
    image_path: np.ndarray  # (N,) str: absolute or relative path of the image file
    image_id: np.ndarray  # (N,) int64: the dataset's image id (COCO image_id; MPII: index of the image name)
    instance_key: np.ndarray  # (N,) int64: stable id within its dataset (COCO annotation id; MPII row index)
    bbox: np.ndarray  # (N, 4) float32: person box x1, y1, x2, y2 in image pixels
    bbox_score: np.ndarray  # (N,) float32: 1 for ground-truth boxes, detector score otherwise
    keypoints: np.ndarray  # (N, K, 2) float32: ground truth in the union in image pixels (0 where unknown)
    keypoints_visible: np.ndarray  # (N, K) float32: 1 where labelled (COCO v>0, MPII joints_vis), else 0
    annotated: np.ndarray  # (N, K) bool: joints this instance's dataset annotates at all
    head_size: np.ndarray  # (N,) float32: PCKh normaliser (MPII head box diagonal * 0.6), NaN if unknown
    area: np.ndarray  # (N,) float32: COCO segment area (for OKS), box area if unknown

    def __post_init__(self):
        n = len(self.dataset)
        for f in fields(self):
            col = getattr(self, f.name)
            if len(col) != n:
                raise ValueError(f'InstanceTable column {f.name!r} has {len(col)} rows, expected {n}')

    def __len__(self) -> int:
        return len(self.dataset)

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def select(self, index) -> 'InstanceTable':
        return InstanceTable(**{k: v[index] for k, v in self.columns().items()})

    @classmethod
    def concat(cls, tables: list['InstanceTable']) -> 'InstanceTable':
        names = [f.name for f in fields(cls)]
        return cls(**{k: np.concatenate([getattr(t, k) for t in tables]) for k in names})

    @classmethod
    def empty(cls, num_joints: int) -> 'InstanceTable':
        return cls(dataset=np.zeros(0, dtype='<U8'), image_path=np.zeros(0, dtype='<U1'),
                   image_id=np.zeros(0, np.int64), instance_key=np.zeros(0, np.int64),
                   bbox=np.zeros((0, 4), np.float32), bbox_score=np.zeros(0, np.float32),
                   keypoints=np.zeros((0, num_joints, 2), np.float32),
                   keypoints_visible=np.zeros((0, num_joints), np.float32),
                   annotated=np.zeros((0, num_joints), bool), head_size=np.zeros(0, np.float32),
                   area=np.zeros(0, np.float32))

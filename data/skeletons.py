"""Keypoint skeletons: COCO-17, MPII-16 and their union (21 joints). Pure data, no I/O.

The union skeleton is the 17 COCO joints in COCO order, followed by the four joints only MPII
annotates: pelvis, thorax, upper_neck, head_top. Every array in the pipeline that says "union-21"
uses this order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    name: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]  # (left, right) index pairs, swapped by a horizontal flip
    links: tuple[tuple[int, int], ...]  # joint index pairs drawn as bones
    sigmas: np.ndarray  # per-joint OKS sigma (float32)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        return self.joint_names.index(name)

    @property
    def flip_indices(self) -> np.ndarray:
        """Permutation p such that flipped[..., j, :] = original[..., p[j], :]."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


def _pairs(names: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a), names.index(b)) for a, b in pairs)


COCO17_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
)
# The official COCO keypoint sigmas (pycocotools / cocoapi).
COCO17_SIGMAS = np.array([
    .026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
    .107, .107, .087, .087, .089, .089], dtype=np.float32)

MPII16_NAMES = (
    'right_ankle', 'right_knee', 'right_hip', 'left_hip', 'left_knee', 'left_ankle',
    'pelvis', 'thorax', 'upper_neck', 'head_top',
    'right_wrist', 'right_elbow', 'right_shoulder', 'left_shoulder', 'left_elbow', 'left_wrist',
)
EXTRA_NAMES = ('pelvis', 'thorax', 'upper_neck', 'head_top')
UNION21_NAMES = COCO17_NAMES + EXTRA_NAMES

# OKS sigmas for the four MPII-only joints have no official value. Chosen by analogy with the COCO
# joint of similar localisation difficulty: pelvis like a hip (.107), thorax like a shoulder (.079),
# upper_neck like a shoulder (.079), head_top like an ankle (.089; the crown is ill-defined on hair).
EXTRA_SIGMAS = np.array([.107, .079, .079, .089], dtype=np.float32)

_LR = [('left_eye', 'right_eye'), ('left_ear', 'right_ear'), ('left_shoulder', 'right_shoulder'),
       ('left_elbow', 'right_elbow'), ('left_wrist', 'right_wrist'), ('left_hip', 'right_hip'),
       ('left_knee', 'right_knee'), ('left_ankle', 'right_ankle')]

_COCO_LINKS = [
    ('left_ankle', 'left_knee'), ('left_knee', 'left_hip'), ('right_ankle', 'right_knee'),
    ('right_knee', 'right_hip'), ('left_hip', 'right_hip'), ('left_shoulder', 'left_hip'),
    ('right_shoulder', 'right_hip'), ('left_shoulder', 'right_shoulder'), ('left_shoulder', 'left_elbow'),
    ('right_shoulder', 'right_elbow'), ('left_elbow', 'left_wrist'), ('right_elbow', 'right_wrist'),
    ('left_eye', 'right_eye'), ('nose', 'left_eye'), ('nose', 'right_eye'), ('left_eye', 'left_ear'),
    ('right_eye', 'right_ear'), ('left_ear', 'left_shoulder'), ('right_ear', 'right_shoulder'),
]
_MPII_LINKS = [
    ('right_ankle', 'right_knee'), ('right_knee', 'right_hip'), ('right_hip', 'pelvis'),
    ('pelvis', 'left_hip'), ('left_hip', 'left_knee'), ('left_knee', 'left_ankle'),
    ('pelvis', 'thorax'), ('thorax', 'upper_neck'), ('upper_neck', 'head_top'),
    ('right_wrist', 'right_elbow'), ('right_elbow', 'right_shoulder'), ('right_shoulder', 'thorax'),
    ('thorax', 'left_shoulder'), ('left_shoulder', 'left_elbow'), ('left_elbow', 'left_wrist'),
]
# Union: COCO links, plus a spine through the MPII-only joints.
_UNION_EXTRA_LINKS = [
    ('left_hip', 'pelvis'), ('right_hip', 'pelvis'), ('pelvis', 'thorax'),
    ('thorax', 'upper_neck'), ('upper_neck', 'head_top'),
    ('left_shoulder', 'thorax'), ('right_shoulder', 'thorax'),
]

COCO17 = Skeleton('coco17', COCO17_NAMES, _pairs(COCO17_NAMES, _LR), _pairs(COCO17_NAMES, _COCO_LINKS),
                  COCO17_SIGMAS)
MPII16 = Skeleton('mpii16', MPII16_NAMES,
                  _pairs(MPII16_NAMES, [p for p in _LR if p[0] in MPII16_NAMES]),
                  _pairs(MPII16_NAMES, _MPII_LINKS),
                  np.concatenate([COCO17_SIGMAS, EXTRA_SIGMAS])[[UNION21_NAMES.index(n) for n in MPII16_NAMES]])
UNION21 = Skeleton('union21', UNION21_NAMES, _pairs(UNION21_NAMES, _LR),
                   _pairs(UNION21_NAMES, _COCO_LINKS + _UNION_EXTRA_LINKS),
                   np.concatenate([COCO17_SIGMAS, EXTRA_SIGMAS]))

SKELETONS = {s.name: s for s in (COCO17, MPII16, UNION21)}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise KeyError(f'unknown skeleton {name!r}; known: {sorted(SKELETONS)}') from None


def union_indices(skeleton: Skeleton | str) -> np.ndarray:
    """For each joint of `skeleton`, its index in the union-21 skeleton."""
    sk = get_skeleton(skeleton) if isinstance(skeleton, str) else skeleton
    return np.array([UNION21_NAMES.index(n) for n in sk.joint_names], dtype=np.int64)


def to_union(values: np.ndarray, skeleton: Skeleton | str, fill=0) -> np.ndarray:
    """Scatter per-joint values (N, K, ...) of `skeleton` into union-21 (N, 21, ...).
    Joints the skeleton lacks get `fill`."""
    idx = union_indices(skeleton)
    values = np.asarray(values)
    out = np.full((values.shape[0], len(UNION21_NAMES)) + values.shape[2:], fill, dtype=values.dtype)
    out[:, idx] = values
    return out


def from_union(values: np.ndarray, skeleton: Skeleton | str) -> np.ndarray:
    """Gather the joints of `skeleton` from a union-21 array (N, 21, ...)."""
    return np.asarray(values)[:, union_indices(skeleton)]


def union_mask(skeleton: Skeleton | str) -> np.ndarray:
    """(21,) bool: which union joints `skeleton` covers."""
    mask = np.zeros(len(UNION21_NAMES), dtype=bool)
    mask[union_indices(skeleton)] = True
    return mask

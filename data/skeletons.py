"""Keypoint skeletons as data: every dataset type's joints (names in the dataset's own order, flip
pairs, links, OKS sigmas), and the union skeleton a run trains, derived from its configured datasets
by joint name. Pure data, no I/O. Nothing outside this file knows a skeleton's size.

The union of datasets [d1, d2, ...] is d1's joints in d1's order, then each later dataset's joints the
union does not have yet, in that dataset's order. Joints are matched by their union name: a dataset's
own name, or the name in ALIASES where two datasets name the same body point differently. With the
configs' COCO then MPII this is the 17 COCO joints, then pelvis, thorax, upper_neck, head_top.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    name: str
    joint_names: tuple[str, ...]  # the dataset's own names, in its own order
    flip_pairs: tuple[tuple[int, int], ...]  # (left, right) index pairs, swapped by a horizontal flip
    links: tuple[tuple[int, int], ...]  # joint index pairs drawn as bones
    sigmas: np.ndarray  # per-joint OKS sigma (float32)
    # own name -> union name, where the dataset names a body point another dataset already names
    aliases: dict = field(default_factory=dict, compare=False)
    # a union's: per joint, the dataset types that annotate it, the one that brought it first
    # (empty for a dataset's own skeleton)
    sources: tuple[tuple[str, ...], ...] = ()

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def union_names(self) -> tuple[str, ...]:
        """The joints' names in a union (the own name unless an alias maps it)."""
        return tuple(self.aliases.get(n, n) for n in self.joint_names)

    def index(self, name: str) -> int:
        return self.joint_names.index(name)

    @property
    def upper_body(self) -> np.ndarray:
        """(K,) bool: mmpose's keypoint 'type' upper (else lower), what RandomHalfBody splits by."""
        return np.array([n not in LOWER_BODY for n in self.union_names])

    @property
    def flip_indices(self) -> np.ndarray:
        """Permutation p such that flipped[..., j, :] = original[..., p[j], :]."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


# mmpose dataset metainfo 'type' lower (every other joint is upper): the datasets agree by name.
LOWER_BODY = ('left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'pelvis')


def _pairs(names: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a), names.index(b)) for a, b in pairs if a in names and b in names)


def _lr_pairs(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Flip pairs by name: every left_X whose right_X the skeleton has, in the order of the left joints."""
    return tuple((i, names.index('right_' + n[5:])) for i, n in enumerate(names)
                 if n.startswith('left_') and 'right_' + n[5:] in names)


def _skeleton(name, names, links, sigmas, aliases=None) -> Skeleton:
    sigmas = np.asarray(sigmas, np.float32)
    assert len(sigmas) == len(names), name
    return Skeleton(name, tuple(names), _lr_pairs(tuple(names)), _pairs(tuple(names), links), sigmas,
                    dict(aliases or {}))


# COCO person keypoints, with the official sigmas (pycocotools / cocoapi).
COCO17_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
)
COCO17_SIGMAS = np.array([
    .026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
    .107, .107, .087, .087, .089, .089], dtype=np.float32)
_COCO_LINKS = [
    ('left_ankle', 'left_knee'), ('left_knee', 'left_hip'), ('right_ankle', 'right_knee'),
    ('right_knee', 'right_hip'), ('left_hip', 'right_hip'), ('left_shoulder', 'left_hip'),
    ('right_shoulder', 'right_hip'), ('left_shoulder', 'right_shoulder'), ('left_shoulder', 'left_elbow'),
    ('right_shoulder', 'right_elbow'), ('left_elbow', 'left_wrist'), ('right_elbow', 'right_wrist'),
    ('left_eye', 'right_eye'), ('nose', 'left_eye'), ('nose', 'right_eye'), ('left_eye', 'left_ear'),
    ('right_eye', 'right_ear'), ('left_ear', 'left_shoulder'), ('right_ear', 'right_shoulder'),
]

# MPII human pose (mmpose's mpii.py order).
MPII16_NAMES = (
    'right_ankle', 'right_knee', 'right_hip', 'left_hip', 'left_knee', 'left_ankle',
    'pelvis', 'thorax', 'upper_neck', 'head_top',
    'right_wrist', 'right_elbow', 'right_shoulder', 'left_shoulder', 'left_elbow', 'left_wrist',
)
# MPII defines no OKS sigmas. The joints COCO shares take COCO's; the others, by analogy with the COCO
# joint of similar localisation difficulty: pelvis like a hip (.107), thorax like a shoulder (.079),
# upper_neck like a shoulder (.079), head_top like an ankle (.089; the crown is ill-defined on hair).
_MPII_OWN_SIGMAS = dict(pelvis=.107, thorax=.079, upper_neck=.079, head_top=.089)
_MPII_LINKS = [
    # spine first: the links a union with COCO takes from MPII (those touching a joint COCO lacks)
    ('left_hip', 'pelvis'), ('right_hip', 'pelvis'), ('pelvis', 'thorax'),
    ('thorax', 'upper_neck'), ('upper_neck', 'head_top'),
    ('left_shoulder', 'thorax'), ('right_shoulder', 'thorax'),
    ('right_ankle', 'right_knee'), ('right_knee', 'right_hip'), ('left_hip', 'left_knee'),
    ('left_knee', 'left_ankle'), ('right_wrist', 'right_elbow'), ('right_elbow', 'right_shoulder'),
    ('left_shoulder', 'left_elbow'), ('left_elbow', 'left_wrist'),
]

# AI Challenger keypoints (mmpose's aic.py: order, links and the sigmas of AIC's own evaluation script).
AIC14_NAMES = (
    'right_shoulder', 'right_elbow', 'right_wrist', 'left_shoulder', 'left_elbow', 'left_wrist',
    'right_hip', 'right_knee', 'right_ankle', 'left_hip', 'left_knee', 'left_ankle', 'head_top', 'neck',
)
AIC14_SIGMAS = np.array([
    0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642, 0.03686941,
    0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173], dtype=np.float32)
_AIC_LINKS = [
    ('right_wrist', 'right_elbow'), ('right_elbow', 'right_shoulder'), ('right_shoulder', 'neck'),
    ('neck', 'left_shoulder'), ('left_shoulder', 'left_elbow'), ('left_elbow', 'left_wrist'),
    ('right_ankle', 'right_knee'), ('right_knee', 'right_hip'), ('right_hip', 'left_hip'),
    ('left_hip', 'left_knee'), ('left_knee', 'left_ankle'), ('head_top', 'neck'),
    ('right_shoulder', 'right_hip'), ('left_shoulder', 'left_hip'),
]

# CrowdPose keypoints (mmpose's crowdpose.py): COCO's 12 body joints in COCO's order, then top_head and neck.
CROWDPOSE14_NAMES = COCO17_NAMES[5:] + ('top_head', 'neck')
CROWDPOSE14_SIGMAS = np.array([.079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089, .079, .079],
                              dtype=np.float32)
_CROWDPOSE_LINKS = [l for l in _COCO_LINKS if l[0] in CROWDPOSE14_NAMES and l[1] in CROWDPOSE14_NAMES] + [
    ('top_head', 'neck'), ('right_shoulder', 'neck'), ('left_shoulder', 'neck')]

# Where two datasets name one body point differently, a dataset's own name -> the union's name.
# AIC's `neck` is MPII's `upper_neck`: mmpose's halpe26 / body8 configs (KeypointConverter) map both
# MPII upper_neck and AIC neck to Halpe's `neck`, and both MPII head_top and AIC head_top to Halpe's
# `head` (so head_top needs no alias). Without it a COCO+MPII+AIC union would carry two neck joints
# that teachers put on the same point.
# CrowdPose's top_head and neck are the same two points (the same configs map them to Halpe's head and neck).
ALIASES = {'aic': {'neck': 'upper_neck'}, 'crowdpose': {'top_head': 'head_top', 'neck': 'upper_neck'}}

COCO17 = _skeleton('coco17', COCO17_NAMES, _COCO_LINKS, COCO17_SIGMAS)
MPII16 = _skeleton('mpii16', MPII16_NAMES, _MPII_LINKS,
                   [COCO17_SIGMAS[COCO17_NAMES.index(n)] if n in COCO17_NAMES else _MPII_OWN_SIGMAS[n]
                    for n in MPII16_NAMES])
AIC14 = _skeleton('aic14', AIC14_NAMES, _AIC_LINKS, AIC14_SIGMAS, ALIASES['aic'])
CROWDPOSE14 = _skeleton('crowdpose14', CROWDPOSE14_NAMES, _CROWDPOSE_LINKS, CROWDPOSE14_SIGMAS, ALIASES['crowdpose'])

# Each dataset type's skeleton (what its annotation files hold, in their order).
DATASET_SKELETONS = {'coco': COCO17, 'mpii': MPII16, 'aic': AIC14, 'crowdpose': CROWDPOSE14}
SKELETONS = {s.name: s for s in DATASET_SKELETONS.values()}
# The name a model config gives the run's union skeleton (`skeleton = 'union'`): the student's joints.
UNION = 'union'


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise KeyError(f'unknown skeleton {name!r}; known: {sorted(SKELETONS)} and {UNION!r}') from None


def dataset_skeleton(dataset_type: str) -> Skeleton:
    try:
        return DATASET_SKELETONS[dataset_type]
    except KeyError:
        raise KeyError(f'unknown dataset type {dataset_type!r}; known: {sorted(DATASET_SKELETONS)}') from None


def derive_union(dataset_types, name: str | None = None) -> Skeleton:
    """The union skeleton of datasets of these types, in this order: the first one's joints, then each
    later one's joints the union lacks (by union name), in its own order. A joint's sigma and the links
    come from the dataset that brought the joint (a link joins the union with its first dataset whose
    joints it touches that are new); flip pairs follow the left_/right_ names. Named union_<types>."""
    dataset_types = tuple(dict.fromkeys(dataset_types))  # a type configured twice adds nothing the second time
    names, sigmas, sources, links = [], [], [], []
    for t in dataset_types:  # a type configured twice adds nothing the second time
        sk = dataset_skeleton(t)
        own = sk.union_names
        new = [j for j, n in enumerate(own) if n not in names]
        for n in own:
            if n in names:
                sources[names.index(n)].append(t)
        for j in new:
            names.append(own[j])
            sigmas.append(sk.sigmas[j])
            sources.append([t])
        added = {own[j] for j in new}
        links += [(own[a], own[b]) for a, b in sk.links
                  if (own[a] in added or own[b] in added) and (own[a], own[b]) not in links]
    names = tuple(names)
    return Skeleton(name or '_'.join((UNION,) + dataset_types), names, _lr_pairs(names), _pairs(names, links), np.array(sigmas, np.float32),
                    sources=tuple(tuple(x) for x in sources))


# The synthetic twins' figure model (data/twins): every joint any dataset type names, so each twin can
# label its own skeleton and the full truth covers any union of dataset types.
TWIN_FIGURE = derive_union(tuple(DATASET_SKELETONS), name='twin_figure')


def model_skeleton(name: str, union: Skeleton) -> Skeleton:
    """The skeleton a model config names: a dataset's (coco17, mpii16, aic14, crowdpose14) or the run's union."""
    return union if name == UNION else get_skeleton(name)


def union_indices(skeleton: Skeleton, union: Skeleton) -> np.ndarray:
    """For each joint of `skeleton`, its index in `union`."""
    if skeleton is union:
        return np.arange(union.num_joints, dtype=np.int64)
    missing = [n for n in skeleton.union_names if n not in union.joint_names]
    if missing:
        raise KeyError(f'skeleton {skeleton.name!r}: joints {missing} are not in the union {union.joint_names}')
    return np.array([union.joint_names.index(n) for n in skeleton.union_names], dtype=np.int64)


def to_union(values: np.ndarray, skeleton: Skeleton, union: Skeleton, fill=0) -> np.ndarray:
    """Scatter per-joint values (N, K, ...) of `skeleton` into the union (N, K_union, ...).
    Joints the skeleton lacks get `fill`."""
    idx = union_indices(skeleton, union)
    values = np.asarray(values)
    out = np.full((values.shape[0], union.num_joints) + values.shape[2:], fill, dtype=values.dtype)
    out[:, idx] = values
    return out


def from_union(values: np.ndarray, skeleton: Skeleton, union: Skeleton) -> np.ndarray:
    """Gather the joints of `skeleton` from a union array (N, K_union, ...)."""
    return np.asarray(values)[:, union_indices(skeleton, union)]


def union_mask(skeleton: Skeleton, union: Skeleton) -> np.ndarray:
    """(K_union,) bool: which union joints `skeleton` covers."""
    mask = np.zeros(union.num_joints, dtype=bool)
    mask[union_indices(skeleton, union)] = True
    return mask

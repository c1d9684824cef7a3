"""Wiring shared by the stages: devices, distributed rank, the split's instances and views, the cache path."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from cache.manifest import build_manifest, sha256_file
from data.datasets import dataset_indices, load_split
from data.instances import InstanceTable
from data.views import POLICIES, VIEW_FIELDS, draw_views
from pipeline.config import resolve


def pick_device(device: str | None, configured: str | None = None) -> torch.device:
    """`device` is what the user asked for on the command line: a CUDA device that does not exist is
    an error. Left unset, the config's `configured` device is a preference: without CUDA it falls back
    to the CPU, saying so; with neither, CUDA when available, else the CPU."""
    if device in (None, '', 'auto') and configured not in (None, '', 'auto'):
        device = str(configured)
        if device.startswith('cuda') and not torch.cuda.is_available():
            print(f'device: the config asks for {device}, but no CUDA device is available here; using the CPU')
            device = 'cpu'
    if device in (None, '', 'auto'):
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise RuntimeError(f'--device {device}: no CUDA device is available here')
    if device == 'cuda' and 'LOCAL_RANK' in os.environ:
        device = f'cuda:{os.environ["LOCAL_RANK"]}'
    device = torch.device(device)
    if device.type == 'cuda' and device.index is not None:
        torch.cuda.set_device(device)  # NCCL and DDP use the current device
    return device


def dist_info() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    return int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1))


def split_instances(cfg: Config, split: str, checks: list | None = None) -> InstanceTable:
    """The split's instance table; `strict_input=True` in the config (dump-teachers --strict) turns
    the first bad annotation record into an error instead of a skipped, counted one."""
    return load_split(cfg.datasets, split, resolve, strict=bool(cfg.get('strict_input', False)), checks=checks)


def split_views(cfg: Config, table: InstanceTable, num_views: int, policy: str | None = None) -> np.ndarray:
    """(V, N, P) view records of every instance, drawn per dataset from (seed, dataset, instance key, view)
    under `policy` (default: the config's views.policy)."""
    names = list(cfg.datasets.keys())
    ds_index = dataset_indices(table, names)
    policy = POLICIES[policy or cfg.views.get('policy', 'main')]
    out = None
    for d in np.unique(ds_index):
        rows = np.flatnonzero(ds_index == d)
        v = draw_views(int(cfg.seed), int(d), table.instance_key[rows], num_views,
                       table.keypoints[rows], table.keypoints_visible[rows], table.bbox[rows], policy)
        if out is None:
            out = np.zeros((num_views, len(table), v.shape[-1]), dtype=v.dtype)
        out[:, rows] = v
    return out


def cache_path(cfg: Config, split: str) -> Path:
    return resolve(cfg.cache.root) / f'{split}.zarr'


def model_geometry(model_cfg_path) -> dict:
    """input size (w, h) and SimCC split ratio of an mmpose-style model config."""
    mc = Config.fromfile(str(resolve(model_cfg_path)))
    return dict(input_size=tuple(int(v) for v in mc.codec['input_size']),
                split=float(mc.codec.get('simcc_split_ratio', 2.0)))


# How teachers see a view; a cache written under another rule is refused.
TEACHER_CROPS = 'native'  # each teacher's own crop of the view box (its aspect, its input size)
BIN_MAP_RULE = ('teacher_bin = a * student_bin + b per instance, from the view box: '
                'data.geometry.teacher_to_student_bins')


def expected_manifest(cfg: Config, split: str, num_views: int, table: InstanceTable) -> dict:
    """What a cache built from `cfg` must say about itself; train-student compares against it."""
    student = model_geometry(cfg.student.config)
    teachers = {}
    for name, t in cfg.teachers.items():
        geo = model_geometry(t.config)
        teachers[name] = dict(config_sha256=sha256_file(resolve(t.config)),
                              checkpoint_sha256=sha256_file(resolve(t.checkpoint)),
                              input_size=list(geo['input_size']), split=geo['split'])
    annotations = {f'{name}.{split}': sha256_file(resolve(ds[split]['ann_file']))
                   for name, ds in cfg.datasets.items() if split in ds}
    return build_manifest(
        split=split,
        student=dict(input_size=list(student['input_size']), split=student['split']),
        teachers=teachers,
        annotations=annotations,
        views=dict(num_views=num_views, policy=cfg.views.get('policy', 'main'), seed=int(cfg.seed),
                   fields=list(VIEW_FIELDS)),
        storage=dict(window=int(cfg.cache.window), tail_blocks=int(cfg.cache.tail_blocks),
                     lossless=bool(cfg.cache.get('lossless', False)),
                     chunk_size=int(cfg.cache.chunk_size), teacher_crops=TEACHER_CROPS),
        counts=dict(instances=len(table), **{f'instances.{n}': int((table.dataset == n).sum())
                                             for n in cfg.datasets}),
    )


MATCH_KEYS = ('split', 'student', 'teachers', 'annotations', 'views', 'storage', 'counts')

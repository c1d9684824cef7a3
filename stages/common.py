"""Wiring shared by the stages: devices, distributed rank, the split's instances and views, the cache path."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from data.datasets import dataset_indices, load_split
from data.instances import InstanceTable
from data.views import POLICIES, draw_views
from pipeline.config import resolve


def pick_device(device: str | None) -> torch.device:
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


def split_instances(cfg: Config, split: str) -> InstanceTable:
    return load_split(cfg.datasets, split, resolve)


def split_views(cfg: Config, table: InstanceTable, num_views: int) -> np.ndarray:
    """(V, N, P) view records of every instance, drawn per dataset from (seed, dataset, instance key, view)."""
    names = list(cfg.datasets.keys())
    ds_index = dataset_indices(table, names)
    policy = POLICIES[cfg.views.get('policy', 'main')]
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

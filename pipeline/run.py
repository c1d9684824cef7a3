"""What a run is, read from its config: the device and distributed rank, the split's instances and
views, the datasets each teacher runs on, the cache's path. The models' geometry is pipeline.models',
the cache's check against the config pipeline.cache_check's, the run folder pipeline.run_folder's."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from cache.store import cache_location, is_remote
from data.datasets import dataset_indices, datasets_union, load_split
from data.instances import InstanceTable
from data.views import POLICIES, VIEW_FIELDS, draw_views, identity_view, stage_first_view
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
    return load_split(cfg.datasets, split, resolve, strict=cfg.strict_input, checks=checks)


# The val split's views, named as a policy in the cache manifest: the un-augmented crop and its mirror.
VAL_VIEWS = 'identity+mirror'


def view_stages(cfg: Config, split: str = 'train', views=None) -> list[dict]:
    """The schedule stages of a split's views: [dict(num_views, policy, first_epoch)]. Train: stage 1 from
    `views` (default: the config's views section), then the config's `stage2` when it trains on the
    config's views; val: one stage, the un-augmented crop and its mirror (the flip test's two crops)."""
    if split == 'val':
        return [dict(num_views=2, policy=VAL_VIEWS, first_epoch=0)]
    own = views is None
    views = cfg.views if own else views
    stages = [dict(num_views=int(views.num_views), policy=str(views.policy), first_epoch=0)]
    if own and cfg.stage2 is not None:
        s2 = cfg.stage2
        stages.append(dict(num_views=int(s2.num_views), policy=str(s2.policy), first_epoch=int(s2.switch_epoch)))
    return stages


def split_views(cfg: Config, table: InstanceTable, stages: list[dict]) -> np.ndarray:
    """(V, N, P) view records of every instance, the stages' views one after another. Stage s draws its
    views per dataset from (seed, dataset, instance key, stage_first_view(s) + v); the val stage is the
    un-augmented crop and its mirror."""
    if stages and stages[0]['policy'] == VAL_VIEWS:
        return np.broadcast_to(np.stack([identity_view(), identity_view(flip=True)])[:, None],
                               (2, len(table), len(VIEW_FIELDS))).copy()
    ds_index = dataset_indices(table, list(cfg.datasets.keys()))
    union = datasets_union(cfg.datasets)
    out = np.zeros((sum(st['num_views'] for st in stages), len(table), len(VIEW_FIELDS)), np.float32)
    start = 0
    for s, st in enumerate(stages):
        for d in np.unique(ds_index):
            rows = np.flatnonzero(ds_index == d)
            out[start:start + st['num_views'], rows] = draw_views(
                int(cfg.seed), int(d), table.instance_key[rows], st['num_views'], table.keypoints[rows],
                table.keypoints_visible[rows], table.bbox[rows], POLICIES[st['policy']], first_view=stage_first_view(s),
                skeleton=union)
        start += st['num_views']
    return out


def stage_view_indices(cache_stages: list[dict], stages: list[dict]) -> list[np.ndarray]:
    """Per stage, the cache's view indices a run with `stages` reads: the first num_views of each of the
    cache's stages (a stage's views are a prefix of a larger draw: data.views.draw_views)."""
    out, start = [], 0
    for have, want in zip(cache_stages, stages):
        out.append(start + np.arange(want['num_views']))
        start += have['num_views']
    return out


def val_truth_file(ds) -> Path | None:
    """A dataset's full val truth file (the synthetic twins: every union joint), or None when it has none."""
    truth_file = ds.truth.val
    return resolve(truth_file) if truth_file and resolve(truth_file).exists() else None


def teacher_datasets(cfg: Config, teacher: str, split: str) -> list[str] | None:
    """The datasets whose crops a teacher is run on: all of them for training (teaching the other
    dataset's joints is the point; None); on val only where the report scores its rows: its own
    dataset, and datasets with a full truth (the synthetic twins), where it is scored on
    the joints it knows. On real data a COCO teacher's rows on MPII crops would never be read."""
    own = cfg.teachers[teacher].dataset
    if split != 'val' or own is None:
        return None
    scored = [name for name, ds in cfg.datasets.items() if name == own or val_truth_file(ds) is not None]
    return None if len(scored) == len(cfg.datasets) else scored


def cache_path(cfg: Config, split: str):
    """The split's cache: under cache.root, relative to the repository root, or an fsspec URL kept as it
    is (s3://bucket/prefix: cache.store.cache_location)."""
    root = cache_location(cfg.cache.root)
    return (root if is_remote(root) else resolve(root)) / f'{split}.zarr'

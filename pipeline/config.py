"""What a run is: a pipeline config (an mmengine.Config file), validated, with its paths resolved.

A pipeline config names the datasets and splits, the teachers (mmpose-style model config +
checkpoint each), the student model config, the view policy, the cache and the training recipe.
See pipeline/configs/demo_synthetic.py for a complete, commented example.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
from mmengine.config import Config, ConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]

# Top-level keys every pipeline config must have, and what each is for (used in error messages).
REQUIRED = {
    'name': 'a short run name',
    'seed': 'the seed of the view generator and of training',
    'work_dir': 'where run outputs go (outputs/<run>)',
    'datasets': 'dict of dataset name -> dict(type=coco|mpii, train=dict(...), val=dict(...))',
    'teachers': 'dict of teacher name -> dict(config=..., checkpoint=...)',
    'student': 'dict(config=<mmpose-style model config of the union-21 student>)',
    'views': 'dict(num_views=V, policy=main|final|none)',
    'cache': 'dict(root=..., window=w, lossless=False, chunk_size=...)',
    'dump_stage': 'dict(batch_size=..., num_workers=..., device=...) for dump-teachers',
    'train': 'the training recipe (epochs, batch_size, lr, losses, ...)',
}
DATASET_TYPES = ('coco', 'mpii')


class ConfigError(ValueError):
    pass


def load_config(path: str | os.PathLike, overrides: dict | None = None) -> Config:
    """Read and validate a pipeline config. `overrides` are dotted keys ('train.epochs': 3)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'{path}: pipeline config not found')
    cfg = Config.fromfile(str(path))
    if overrides:
        cfg.merge_from_dict({k: v for k, v in overrides.items() if v is not None})
    cfg.config_path = str(path)
    validate_config(cfg, str(path))
    return cfg


def validate_config(cfg: Config, where: str = 'config') -> None:
    missing = [f'{k} ({why})' for k, why in REQUIRED.items() if k not in cfg]
    if missing:
        raise ConfigError(f'{where}: missing keys: ' + '; '.join(missing))
    for name, ds in cfg.datasets.items():
        if ds.get('type') not in DATASET_TYPES:
            raise ConfigError(f'{where}: datasets.{name}.type must be one of {DATASET_TYPES}, got {ds.get("type")!r}')
        for split in ('train', 'val'):
            if split in ds and 'ann_file' not in ds[split]:
                raise ConfigError(f'{where}: datasets.{name}.{split} needs ann_file and image_root')
    for name, t in cfg.teachers.items():
        for key in ('config', 'checkpoint'):
            if key not in t:
                raise ConfigError(f'{where}: teachers.{name} needs {key!r}')
    if 'config' not in cfg.student:
        raise ConfigError(f'{where}: student needs config')
    v = cfg.views
    if int(v.get('num_views', 0)) < 1:
        raise ConfigError(f'{where}: views.num_views must be >= 1')


def resolve(path: str | os.PathLike) -> Path:
    """Paths in configs are relative to the repository root (where cli.py lives)."""
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def seed_everything(seed: int) -> None:
    import torch
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_plain(obj):
    """ConfigDict -> plain dict/list (JSON-able), for manifests and logs."""
    if isinstance(obj, (ConfigDict, dict)):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj

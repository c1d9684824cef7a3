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

from data.datasets import DATASET_TYPES
from data.photometric import PHOTOMETRIC_POLICIES
from data.views import POLICIES

REPO_ROOT = Path(__file__).resolve().parents[1]

# Top-level keys every pipeline config must have, and what each is for (used in error messages).
REQUIRED = {
    'name': 'a short run name',
    'seed': 'the seed of the view generator and of training',
    'work_dir': 'where run outputs go (outputs/<run>)',
    'datasets': 'dict of dataset name -> dict(type=coco|mpii|aic|crowdpose, train=dict(...), val=dict(...))',
    'teachers': 'dict of teacher name -> dict(config=..., checkpoint=...)',
    'student': 'dict(config=<mmpose-style model config of the student on the datasets\' union>, init_backbone=<checkpoint or None>)',
    'views': 'dict(num_views=V, policy=main|final|wide|none): the stage-1 views drawn per train instance',
    'cache': 'dict(root=..., window=w, tail_blocks=b, levels=L, rd_lambda=r, lossless=False, chunk_size=...)',
    'dump_stage': 'dict(batch_size=..., num_workers=..., device=..., writers=...) for dump-teachers',
    'train': 'the training recipe (epochs, batch_size, lr, losses, ...)',
}

OPTIONAL = ('teacher_train', 'pretrain', 'synthetic', 'strict_input', 'stage2', 'evaluation')

REQUIRED_VALUE = object()
ABSENT = object()  # a sub-section that may be left out, and then stays out (a dataset without a val split)
NONE = type(None)
# Every section below is a schema: key -> (type, default), each default written once; load_config
# refuses unknown keys (naming the closest valid one), wrong types and values outside CHOICES, and
# fills in every default, so the stages read `cfg.section.key` and never a default of their own.
DATASET_SCHEMA = {'type': (str, REQUIRED_VALUE), 'train': (dict, ABSENT), 'val': (dict, ABSENT),
                  'truth': (dict, {})}  # truth: the synthetic twins' full-skeleton truth files
DATASET_PART_SCHEMAS = {
    'train': {'ann_file': (str, REQUIRED_VALUE), 'image_root': (str, REQUIRED_VALUE)},
    'val': {'ann_file': (str, REQUIRED_VALUE), 'image_root': (str, REQUIRED_VALUE),
            'det_file': ((str, NONE), None),  # None: the annotation file's ground-truth boxes
            'det_score_thr': (float, 0.0),
            'head_boxes_file': ((str, NONE), None)},  # MPII's head boxes; None: no PCKh
    'truth': {'train': ((str, NONE), None), 'val': ((str, NONE), None)},
}
# widen_backbone: init_backbone is the same network at half the width, widened by duplication first.
STUDENT_SCHEMA = {'config': (str, REQUIRED_VALUE), 'init_backbone': ((str, NONE), None),
                  'widen_backbone': (bool, False)}
TEACHER_SCHEMA = {'config': (str, REQUIRED_VALUE), 'checkpoint': (str, REQUIRED_VALUE),
                  'dataset': ((str, NONE), None),  # the dataset it was trained on (and is scored on first)
                  'init_backbone': ((str, NONE), None), 'widen_backbone': (bool, False),
                  'train': (dict, {})}  # its own overrides of teacher_train
# A model others start from (e.g. the student's backbone), trained by --as-teacher; its own views
# (None: the config's).
PRETRAIN_SCHEMA = {**TEACHER_SCHEMA, 'dataset': (str, REQUIRED_VALUE), 'views': ((dict, NONE), None)}
CACHE_SCHEMA = {'root': (str, REQUIRED_VALUE), 'window': (int, REQUIRED_VALUE), 'tail_blocks': (int, REQUIRED_VALUE),
                # code levels of the coded rows (cache/window.py); 0: fp16 windows
                'levels': (int, 0),
                # > 0: each row's codes chosen by a rate-distortion search (cache.window.rd_codes): ~15%
                # smaller rows at the same KL, but its students trained worse (docs/results.md); 0: rounded
                'rd_lambda': (float, 0.0),
                'lossless': (bool, False), 'chunk_size': (int, REQUIRED_VALUE)}
DUMP_STAGE_SCHEMA = {'batch_size': (int, 64), 'num_workers': (int, 0),
                     'device': ((str, NONE), None),  # None: CUDA when available
                     # processes that encode and write the rows (1: a thread): one core encodes a few
                     # thousand rows/s (a few hundred with cache.rd_lambda > 0), fewer than a GPU's teachers
                     'writers': (int, 1)}
SYNTHETIC_SCHEMA = {'out': (str, REQUIRED_VALUE), 'images': (int, REQUIRED_VALUE), 'seed': (int, 0)}
# The training recipe (`train`; `teacher_train` overrides some of it for --as-teacher): every key, its
# type and its default, written once. Unknown keys are refused with the closest valid name.
TRAIN_SCHEMA = {
    'epochs': (int, REQUIRED_VALUE),
    'batch_size': (int, REQUIRED_VALUE),
    'base_lr': (float, REQUIRED_VALUE),  # AdamW lr at the real batch (mmpose's base_lr)
    # mmpose's auto_scale_lr.base_batch_size, applied as its --auto-scale-lr does: lr = base_lr x real
    # batch / this. None: base_lr is the lr (mmpose's default: the flag is off).
    'auto_scale_lr': ((int, type(None)), None),
    'weight_decay': (float, 0.05),  # none on norms and biases
    'warmup_steps': (int, 0),
    'grad_clip': ((float, type(None)), None),  # max total grad norm; None: no clipping
    'ema_momentum': (float, 0.0002),
    'temperature': (float, 1.0),
    'loss_weights': (dict, REQUIRED_VALUE),  # gt and one per teacher
    'overlap': (str, 'confidence'),  # joints several teachers cover: separate | mean | product | confidence
    'kd_decay': (bool, False),
    'photometric': ((str, bool, type(None)), 'final'),  # data.photometric policy; False/None: off
    'gt_reduction': (str, 'batch_mean'),  # batch_mean | mmpose
    'val_interval': (int, 1),
    'checkpoint_interval': (int, 1),
    'num_workers': (int, 0),
    'amp': (bool, True),  # bf16 autocast on CUDA
    'channels_last': (bool, True),  # on CUDA
    # Each epoch, each instance's cached view is mirrored with probability 1/2 (crop and cached rows
    # alike, exactly: data.views.mirror_matrix, teachers.simcc.mirror_simcc): twice the views, no
    # teacher cost.
    'flip_views': (bool, True),
    'sync_bn': (bool, False),  # SyncBatchNorm under torchrun (mmpose's RTMPose trains with SyncBN)
}
# The views of a schedule stage: stage 1 is `views`, stage 2 (mmpose's PipelineSwitchHook) `stage2`.
VIEWS_SCHEMA = {'num_views': (int, REQUIRED_VALUE), 'policy': (str, REQUIRED_VALUE)}
STAGE2_SCHEMA = {
    'switch_epoch': (int, REQUIRED_VALUE),  # the first epoch (0-based) of stage 2: mmpose's switch_epoch
    'num_views': (int, REQUIRED_VALUE),
    'policy': (str, REQUIRED_VALUE),
    'photometric': ((str, bool, type(None)), REQUIRED_VALUE),
}
EVALUATION_SCHEMA = {
    'flip_test': (bool, True),  # mmpose's test_cfg flip_test (the published RTMPose numbers use it)
    # Keep best.pth beside last.pth by this val metric, 'DATASET/METRIC' (METRIC: AP, PCKh, pck_all),
    # higher is better (mmpose's save_best='coco/AP'); None: last.pth only.
    'save_best': ((str, type(None)), None),
}
CHOICES = {'overlap': ('separate', 'mean', 'product', 'confidence'), 'gt_reduction': ('batch_mean', 'mmpose'),
           'policy': tuple(POLICIES), 'photometric': tuple(PHOTOMETRIC_POLICIES) + (True, False, None),
           'type': DATASET_TYPES}
POSITIVE = ('epochs', 'batch_size', 'base_lr', 'auto_scale_lr', 'val_interval', 'checkpoint_interval', 'num_views',
            'switch_epoch', 'chunk_size', 'images', 'writers')
BEST_METRICS = ('AP', 'PCKh', 'pck_all')


class ConfigError(ValueError):
    pass


def load_config(path: str | os.PathLike, overrides: dict | None = None) -> Config:
    """Read and validate a pipeline config. `overrides` are dotted keys ('train.epochs': 3)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f'{path}: pipeline config not found')
    cfg = Config.fromfile(str(path))
    if overrides:
        overrides = dict(overrides)
        for key in [k for k, v in overrides.items() if '.' not in k and isinstance(v, dict) and cfg.get(k) is None]:
            cfg[key] = overrides.pop(key)  # a section the file leaves None (stage2 = None) set whole
        cfg.merge_from_dict(overrides)  # `key=None` sets None (e.g. no head-box file)
    cfg.config_path = str(path)
    validate_config(cfg, str(path))
    return cfg


def parse_cfg_options(options) -> dict:
    """['train.epochs=3', 'name=x'] -> {'train.epochs': 3, 'name': 'x'} (mmengine's --cfg-options).
    A value is read as a Python literal (numbers, True, None, lists, dicts, quoted strings), else kept
    as the string it is."""
    import ast
    out = {}
    for item in options or ():
        key, sep, value = str(item).partition('=')
        if not sep or not key:
            raise ConfigError(f'--cfg-options {item!r}: expected KEY=VALUE')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def check_keys(section, allowed, name: str, where: str) -> None:
    """Refuse a key of `section` that is not in `allowed`, naming the closest valid one."""
    import difflib
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            prefix = f'{name}.' if name else ''
            raise ConfigError(f'{where}: {prefix}{key}: unknown key' + (f"; did you mean '{close[0]}'?" if close else
                              f' (known: {", ".join(allowed)})'))


def validate_config(cfg: Config, where: str = 'config') -> None:
    """Every section checked against its schema and replaced by the validated section, defaults filled."""
    missing = [f'{k} ({why})' for k, why in REQUIRED.items() if k not in cfg]
    if missing:
        raise ConfigError(f'{where}: missing keys: ' + '; '.join(missing))
    # top level; names starting with '_' are the config file's own variables (e.g. _data)
    check_keys([k for k in cfg if not k.startswith('_') and k != 'config_path'], tuple(REQUIRED) + OPTIONAL, '', where)
    for name, ds in cfg.datasets.items():
        ds = check_section(ds, DATASET_SCHEMA, f'datasets.{name}', where, required=True)
        for part, schema in DATASET_PART_SCHEMAS.items():
            if part in ds:
                ds[part] = check_section(ds[part], schema, f'datasets.{name}.{part}', where, required=True)
        cfg.datasets[name] = ds
    for name, t in cfg.teachers.items():
        for key in ('config', 'checkpoint'):
            if key not in t:
                raise ConfigError(f'{where}: teachers.{name} needs {key!r}')
        cfg.teachers[name] = check_section(t, TEACHER_SCHEMA, f'teachers.{name}', where, required=True)
    cfg.pretrain = dict(cfg.get('pretrain') or {})
    for name, p in cfg.pretrain.items():
        for key in ('config', 'checkpoint', 'dataset'):
            if key not in p:
                raise ConfigError(f'{where}: pretrain.{name} needs {key!r}')
        if name in cfg.teachers:
            raise ConfigError(f'{where}: pretrain.{name}: a teacher has that name already')
        p = cfg.pretrain[name] = check_section(p, PRETRAIN_SCHEMA, f'pretrain.{name}', where, required=True)
        if p.views is not None:
            p.views = check_section(p.views, VIEWS_SCHEMA, f'pretrain.{name}.views', where, required=True)
    for section in ('teachers', 'pretrain'):
        for name, t in cfg[section].items():
            if t.widen_backbone and not t.init_backbone:
                raise ConfigError(f'{where}: {section}.{name}.widen_backbone needs init_backbone')
            if t.dataset is not None and t.dataset not in cfg.datasets:
                raise ConfigError(f'{where}: {section}.{name}.dataset {t.dataset!r} names no dataset of the config '
                                  f'({sorted(cfg.datasets)})')
            t.train = check_train(t.train, f'{section}.{name}.train', where, required=False)
    if 'config' not in cfg.student:
        raise ConfigError(f'{where}: student needs config')
    cfg.student = check_section(cfg.student, STUDENT_SCHEMA, 'student', where, required=True)
    if cfg.student.widen_backbone and not cfg.student.init_backbone:
        raise ConfigError(f'{where}: student.widen_backbone needs init_backbone')
    cfg.cache = check_section(cfg.cache, CACHE_SCHEMA, 'cache', where, required=True)
    cfg.dump_stage = check_section(cfg.dump_stage, DUMP_STAGE_SCHEMA, 'dump_stage', where, required=True)
    if cfg.get('synthetic') is not None:
        cfg.synthetic = check_section(cfg.synthetic, SYNTHETIC_SCHEMA, 'synthetic', where, required=True)
    cfg.strict_input = check_section({'strict_input': cfg.get('strict_input', False)},
                                     {'strict_input': (bool, False)}, '', where, required=True).strict_input
    cfg.views = check_section(cfg.views, VIEWS_SCHEMA, 'views', where, required=True)
    cfg.train = check_train(cfg.train, 'train', where, required=True)
    cfg.teacher_train = check_train(cfg.get('teacher_train') or {}, 'teacher_train', where, required=False)
    cfg.evaluation = check_section(cfg.get('evaluation') or {}, EVALUATION_SCHEMA, 'evaluation', where, required=True)
    best = cfg.evaluation.save_best
    if best is not None and (best.count('/') != 1 or best.split('/')[0] not in cfg.datasets
                             or best.split('/')[1] not in BEST_METRICS):
        raise ConfigError(f'{where}: evaluation.save_best must be DATASET/METRIC with DATASET one of '
                          f'{sorted(cfg.datasets)} and METRIC one of {BEST_METRICS}, got {best!r}')
    cfg.stage2 = cfg.get('stage2')
    if cfg.stage2 is not None:
        cfg.stage2 = check_section(cfg.stage2, STAGE2_SCHEMA, 'stage2', where, required=True)
        if not 0 < cfg.stage2.switch_epoch < cfg.train.epochs:
            raise ConfigError(f'{where}: stage2.switch_epoch must be in (0, train.epochs = {cfg.train.epochs}), '
                              f'got {cfg.stage2.switch_epoch}')
    weights = set(cfg.train.loss_weights)
    expected = {'gt'} | set(cfg.teachers)
    if weights != expected:
        raise ConfigError(f'{where}: train.loss_weights must have gt and one weight per teacher '
                          f'{sorted(cfg.teachers)}: ' + '; '.join(
                              [f'no weight for {sorted(expected - weights)}'] * bool(expected - weights)
                              + [f'{sorted(weights - expected)} name no teacher'] * bool(weights - expected)))


def supervised_model(cfg: Config, name: str) -> ConfigDict:
    """What `train-student --as-teacher NAME` trains on ground truth: teacher NAME, or the `pretrain`
    model NAME (a model others start from, e.g. the one the student's backbone comes from)."""
    models = {**cfg.teachers, **cfg.pretrain}
    if name not in models:
        raise ConfigError(f'--as-teacher {name}: the config has no teacher or pretrain model of that name '
                          f'(it has {sorted(models)})')
    return models[name]


def check_train(section, name: str, where: str, required: bool) -> ConfigDict:
    """A training section (train, teacher_train, a model's train overrides): TRAIN_SCHEMA's keys."""
    return check_section(section, TRAIN_SCHEMA, name, where, required)


def check_section(section, schema: dict, name: str, where: str, required: bool) -> ConfigDict:
    """A config section against its schema: unknown keys refused (closest valid name suggested), types,
    enumerated values (CHOICES, the allowed list in the message) and ranges checked and, when
    `required`, every default filled in (an override section such as teacher_train only overrides)."""
    section = dict(section)
    check_keys(section, tuple(schema), name, where)
    out = {}
    for key, (kind, default) in schema.items():
        dotted = f'{name}.{key}' if name else key
        if key not in section:
            if required and default is REQUIRED_VALUE:
                raise ConfigError(f'{where}: {dotted} is required')
            if required and default is not ABSENT:
                out[key] = ConfigDict(default) if isinstance(default, dict) else default
            continue
        value = section[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kind):
            names = ' or '.join(k.__name__ for k in kinds)
            raise ConfigError(f'{where}: {dotted} must be {names}, got {value!r}')
        if key in CHOICES and value not in CHOICES[key]:
            raise ConfigError(f'{where}: {dotted} must be one of {CHOICES[key]}, got {value!r}')
        if key in POSITIVE and value is not None and value <= 0:
            raise ConfigError(f'{where}: {dotted} must be > 0, got {value!r}')
        out[key] = value
    return ConfigDict(out)


def resolve(path: str | os.PathLike) -> Path:
    """Paths in configs are relative to the repository root (where cli.py lives)."""
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def repo_relative(path) -> str:
    """A path as a config writes it: relative to the repository root when it lies inside it, else as
    given (a path elsewhere, an fsspec URL)."""
    if '://' in str(path):
        return str(path)
    p = Path(path)
    if not p.is_absolute():
        return str(path)
    try:
        return str(p.resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(path)


def seed_everything(seed: int) -> None:
    import torch
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)



"""A tiny, fast world for the stage tests: synthetic twins, random teachers, a derived demo config.

Everything lives under one session tmp folder. The config is pipeline/configs/demo_synthetic.py with
every path re-rooted there and small numbers (2 views, chunks of 16, 2 epochs, batch 16). Teachers
are randomly initialised demo models saved as checkpoints (fixed torch seed): contracts and
resumption do not need good teachers. Trained teachers are built only by the slow quality test.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from mmengine.config import Config

from tests.conftest import ROOT

BASE_CONFIG = ROOT / 'pipeline' / 'configs' / 'demo_synthetic.py'
N_IMAGES = 24  # per twin: ~57 train and ~12 val instances in all


def _rerooted(tree, old: str, new: str, prefix: str) -> dict:
    """Dotted overrides that move every path under `old` (the config's data folder) to `new`."""
    out = {}
    for key, value in tree.items():
        dotted = f'{prefix}.{key}'
        if isinstance(value, dict):
            out.update(_rerooted(value, old, new, dotted))
        elif isinstance(value, str) and value.startswith(old):
            out[dotted] = new + value[len(old):]
    return out


def save_random_teacher(model_config, path: Path, seed: int, images: list[Path]) -> Path:
    """A randomly initialised demo model whose BatchNorm statistics are measured on a few images.

    Straight from init, eval-mode BatchNorm (running mean 0, var 1) lets the backbone's signal die
    out and the model gives the same logits for every crop, which would make any replay or cache
    bug invisible. Calibrating the statistics (a few train-mode forwards, no gradient) keeps the
    weights random but makes the output depend on the crop.
    """
    import cv2
    from data.images import read_image
    from teachers.checkpoints import save_checkpoint
    from teachers.rtmpose import build_model
    torch.manual_seed(seed)
    model = build_model(str(ROOT / model_config))
    w, h = model.input_size
    crops = np.stack([cv2.resize(read_image(p), (w, h)) for p in images])
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for i in range(0, len(crops), 8):
            model(model.normalize(torch.from_numpy(crops[i:i + 8])))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    return save_checkpoint(path, model.state_dict(), {})


class StageEnv:
    """Session world: `cfg(tag, **overrides)` gives a validated pipeline config whose run outputs
    (work_dir, cache.root) live in their own folder `root/tag`."""

    def __init__(self, root: Path, n_images: int = N_IMAGES):
        from data.twins import make_synthetic
        from pipeline.config import load_config
        self.root = root
        self.data = root / 'synthetic'
        make_synthetic(self.data, n_images=n_images, seed=0)
        base = Config.fromfile(str(BASE_CONFIG))
        old = str(base.synthetic.out)
        self.base_overrides = _rerooted(base.datasets.to_dict(), old, str(self.data), 'datasets')
        assert self.base_overrides, 'no dataset path of the demo config was re-rooted'
        self.base_overrides['synthetic.out'] = str(self.data)
        self.teacher_ckpts = {}
        calib = sorted((self.data / 'coco' / 'images' / 'train').glob('*.jpg'))[:8] + \
            sorted((self.data / 'mpii' / 'images').glob('*.jpg'))[:8]
        assert len(calib) == 16, calib
        for i, (name, t) in enumerate(base.teachers.items()):
            self.teacher_ckpts[name] = save_random_teacher(t.config, root / 'teachers' / name / 'random.pth',
                                                           seed=100 + i, images=calib)
            self.base_overrides[f'teachers.{name}.checkpoint'] = str(self.teacher_ckpts[name])
        self.base_overrides.update({
            'views.num_views': 2,
            'cache.chunk_size': 16,
            'dump_stage.batch_size': 16, 'dump_stage.num_workers': 0, 'dump_stage.device': 'cpu',
            'train.epochs': 2, 'train.batch_size': 16, 'train.val_interval': 1,
            'train.checkpoint_interval': 1, 'train.num_workers': 0, 'train.warmup_steps': 2,
            # a large lr (8e-3 at our batch of 16), so that a few steps move the student measurably
            'train.base_lr': 8e-3,
            'teacher_train.epochs': 1, 'teacher_train.batch_size': 16,
        })
        self._load = load_config

    def cfg(self, tag: str, **overrides):
        o = dict(self.base_overrides)
        o['work_dir'] = str(self.root / tag / 'work')
        o['cache.root'] = str(self.root / tag / 'cache')
        o.update(overrides)
        return self._load(BASE_CONFIG, o)


@contextlib.contextmanager
def one_thread():
    """One torch intra-op thread. On 2 cores shared with other jobs, torch's spinning OpenMP threads
    made a training step ~60x slower (8 s instead of 0.13 s). Every stage computation of these tests
    runs under it (session fixtures included), so runs compared bit for bit use the same kernels:
    CPU kernels may round differently with another thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_thread():
        yield


@pytest.fixture(scope='session')
def stage_env(tmp_path_factory) -> StageEnv:
    with one_thread():
        return StageEnv(tmp_path_factory.mktemp('stages'))


@pytest.fixture(scope='session')
def dumped(stage_env):
    """The main config with its train cache (2 views) and val cache (1 view) dumped by random teachers."""
    from stages.dump import dump_teachers
    cfg = stage_env.cfg('main')
    t0 = time.perf_counter()
    with one_thread():
        stats = {split: dump_teachers(cfg, split=split, device='cpu') for split in ('train', 'val')}
    return dict(cfg=cfg, stats=stats, seconds=time.perf_counter() - t0)


@pytest.fixture(scope='session')
def lossless_dumped(stage_env):
    """The same config with cache.lossless=True (train split only)."""
    from stages.dump import dump_teachers
    cfg = stage_env.cfg('lossless', **{'cache.lossless': True})
    with one_thread():
        dump_teachers(cfg, split='train', device='cpu')
    return dict(cfg=cfg)


@pytest.fixture(scope='session')
def offline_run(dumped):
    """A finished 2-epoch offline student run on the main cache (work_dir/offline)."""
    from stages.train import train
    with one_thread():
        return train(dumped['cfg'], mode='offline', device='cpu', num_workers=0)


@pytest.fixture(scope='session')
def supervised_run(dumped):
    """A finished 1-epoch supervised baseline beside the offline run (work_dir/supervised)."""
    from stages.train import train
    with one_thread():
        return train(dumped['cfg'], mode='supervised', epochs=1, device='cpu', num_workers=0)


# ---- helpers shared by the test files ------------------------------------------------------
def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / 'log.jsonl').read_text().splitlines() if line.strip()]


def teacher_arrays(cache_path: Path) -> dict:
    """Every array under teachers/ of a cache, as numpy (for exact comparisons of two dumps); the
    measured forward times (unit_seconds) are timings, not content, and are left out."""
    root = zarr.open_group(str(cache_path), mode='r')
    out = {}
    for name in root['teachers'].group_keys():
        for key, arr in root['teachers'][name].arrays():
            if key != 'unit_seconds':
                out[f'{name}/{key}'] = arr[...]
    return out


def assert_same_arrays(a: dict, b: dict, what: str = ''):
    """Integer and bool arrays (window starts, done markers) exactly; fp16 values to within one fp16
    step (a teacher forward may round differently with another thread count or batch layout)."""
    assert sorted(a) == sorted(b), what
    for key in a:
        if a[key].dtype.kind == 'f':
            np.testing.assert_allclose(a[key].astype(np.float32), b[key].astype(np.float32), rtol=2 ** -10,
                                       atol=1e-4, err_msg=f'{what}: {key} differs')
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f'{what}: {key} differs')


def student_geometry(cfg):
    from pipeline.models import model_geometry
    g = model_geometry(cfg.student.config)
    size = tuple(g['input_size'])
    return size, (int(size[0] * g['split']), int(size[1] * g['split'])), g['split']


def load_teachers(cfg) -> dict:
    """name -> teacher model, on CPU."""
    from pipeline.config import resolve
    from teachers.checkpoints import load_model
    return {name: load_model(resolve(t.config), resolve(t.checkpoint), device='cpu').eval()
            for name, t in cfg.teachers.items()}


def live_rows(cfg, model, table, views, view: int, rows) -> tuple:
    """The live teacher on its own replayed crops of (view, rows), mapped into the student's bins:
    (x log-probs, y log-probs, x outside mass, y outside mass) as numpy. Built here from the public
    pieces (image read, replay_view, view_box_scales, teacher_to_student_bins, run_teacher,
    to_student_bins), not through the dump's loader."""
    from data.geometry import teacher_to_student_bins
    from data.images import read_image
    from data.views import replay_view, view_box_scales
    from teachers.targets import run_teacher, to_student_bins
    size, bins, split = student_geometry(cfg)
    crops = np.stack([replay_view(read_image(table.image_path[r]), table.bbox[r], views[view, r],
                                  model.input_size)[0] for r in rows])
    bin_map = teacher_to_student_bins(size, model.input_size, view_box_scales(table.bbox[rows], views[view, rows]),
                                      split, model.codec.simcc_split_ratio)
    x, y = run_teacher(model, crops, torch.device('cpu'), 64)
    return tuple(a.cpu().numpy() for a in to_student_bins(x, y, bin_map, bins))

"""What a run is, read from its config: the device and distributed rank, the split's instances and views,
the models' geometry, the distillation temperature of the cached rows, the cache's path and the
manifest a cache built from this config must carry; and the run folder's layout (RunFolder)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from cache.manifest import MATCH_KEYS, TEACHER_CROPS, build_manifest, diff_manifest
from data.files import sha256_file
from data.datasets import dataset_indices, load_split
from data.instances import InstanceTable
from data.views import POLICIES, VIEW_FIELDS, draw_views, identity_view, stage_first_view
from pipeline.config import load_config, repo_relative, resolve

# benchmarks/offline_vs_online.py leaves its last result in the run's work_dir under this name; the
# report quotes it.
OFFLINE_VS_ONLINE_FILE = 'offline_vs_online.json'


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
    out = np.zeros((sum(st['num_views'] for st in stages), len(table), len(VIEW_FIELDS)), np.float32)
    start = 0
    for s, st in enumerate(stages):
        for d in np.unique(ds_index):
            rows = np.flatnonzero(ds_index == d)
            out[start:start + st['num_views'], rows] = draw_views(
                int(cfg.seed), int(d), table.instance_key[rows], st['num_views'], table.keypoints[rows],
                table.keypoints_visible[rows], table.bbox[rows], POLICIES[st['policy']], first_view=stage_first_view(s))
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
    """A dataset's full 21-joint val truth file (the synthetic twins), or None when it has none."""
    truth_file = ds.truth.val
    return resolve(truth_file) if truth_file and resolve(truth_file).exists() else None


def teacher_datasets(cfg: Config, teacher: str, split: str) -> list[str] | None:
    """The datasets whose crops a teacher is run on: all of them for training (teaching the other
    dataset's joints is the point; None); on val only where the report scores its rows: its own
    dataset, and datasets with a full 21-joint truth (the synthetic twins), where it is scored on
    the joints it knows. On real data a COCO teacher's rows on MPII crops would never be read."""
    own = cfg.teachers[teacher].dataset
    if split != 'val' or own is None:
        return None
    scored = [name for name, ds in cfg.datasets.items() if name == own or val_truth_file(ds) is not None]
    return None if len(scored) == len(cfg.datasets) else scored


def cache_path(cfg: Config, split: str) -> Path:
    return resolve(cfg.cache.root) / f'{split}.zarr'


def model_geometry(model_cfg_path) -> dict:
    """input size (w, h) and SimCC split ratio of an mmpose-style model config."""
    mc = Config.fromfile(str(resolve(model_cfg_path)))
    return dict(input_size=tuple(int(v) for v in mc.codec['input_size']),
                split=float(mc.codec.get('simcc_split_ratio', 2.0)))


def head_loss_beta(model_cfg_path) -> float:
    """The SimCC loss beta of an mmpose-style model config's head (RTMPose: 10, as mmpose's
    KLDiscretLoss / KDLoss): the sharpening both the ground-truth and the KD loss apply."""
    head = Config.fromfile(str(resolve(model_cfg_path))).model.head
    return float(head.get('loss', {}).get('beta', 10.0))


def kd_temperature(cfg: Config) -> float:
    """The temperature, applied to the stored log-probabilities, of the distribution the student is
    distilled towards: the KD loss sharpens them by the student head's loss beta divided by
    train.temperature. Cache fidelity is measured there."""
    return float(cfg.train.temperature) / head_loss_beta(cfg.student.config)


def cache_differences(cfg: Config, split: str, cache, table: InstanceTable, stages: list[dict] | None = None,
                      exact: bool = False) -> list[str]:
    """How an open cache differs from what `cfg` would write for `split` (empty: it fits): its manifest,
    then its rows against the split's instances. A cache with more views per stage than `stages` asks
    for fits a reader (a run reads the first ones); `exact` (a dump resuming it) asks for the same."""
    stages = stages or view_stages(cfg, split)
    cached = cache.manifest.get('views', {}).get('stages') or []
    if not exact and len(cached) == len(stages) and all(c.get('num_views', 0) >= s['num_views']
                                                        for c, s in zip(cached, stages)):
        stages = [dict(s, num_views=c['num_views']) for c, s in zip(cached, stages)]
    diffs = diff_manifest(expected_manifest(cfg, split, stages, table), cache.manifest, keys=MATCH_KEYS)
    if not diffs and (len(cache.instances) != len(table)
                      or not np.array_equal(cache.instances.instance_key, table.instance_key)):
        diffs = [f'instances: the cache rows are not the {split} split\'s instances in the config\'s order']
    return diffs


def check_cache(cfg: Config, split: str, cache, table: InstanceTable, stages: list[dict] | None = None, *,
                exact: bool = False, finished: bool = True, remedy: str = 'run dump-teachers again') -> None:
    """The one check of a cache against the config that reads or resumes it: refused, in one message
    naming the cache, the first difference and what to do, when it was built from another config or
    (`finished`) its dump has units pending."""
    diffs = cache_differences(cfg, split, cache, table, stages, exact=exact)
    if diffs:
        raise RuntimeError(f"{cache.path}: the {split} cache was not built from this run's config ({diffs[0]}); "
                           f'refusing it: {remedy}. Differences:\n  ' + '\n  '.join(diffs))
    pending = {t: len(cache.pending_units(t)) for t in cache.teacher_names} if finished else {}
    if any(pending.values()):
        raise RuntimeError(f'{cache.path}: the dump is not finished ({pending} units pending); '
                           'run dump-teachers again to resume it')


def expected_manifest(cfg: Config, split: str, stages: list[dict], table: InstanceTable) -> dict:
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
        views=dict(stages=[dict(num_views=int(s['num_views']), policy=s['policy']) for s in stages],
                   seed=int(cfg.seed), fields=list(VIEW_FIELDS)),  # when a stage starts is training's
        storage=dict(window=int(cfg.cache.window), tail_blocks=int(cfg.cache.tail_blocks),
                     lossless=cfg.cache.lossless,
                     chunk_size=int(cfg.cache.chunk_size), teacher_crops=TEACHER_CROPS),
        counts=dict(instances=len(table), **{f'instances.{n}': int((table.dataset == n).sum())
                                             for n in cfg.datasets}),
    )


class RunFolder:
    """The one owner of a training run's folder layout (outputs/<run>/<mode>/): every file of a run is
    reached through it.

        run.json             what trained: mode, model config, epochs, batch, lr, datasets, cache, recipe;
                             its paths relative to the run folder (the config) or as the config writes
                             them (repository-relative), so a moved run folder still reports and resumes
        pipeline_config.py   the resolved pipeline config, so export-report sees exactly what trained
        log.jsonl            one record per epoch (losses, lr, throughput, val metrics when evaluated)
        last.pth             the EMA weights (mmpose layout) + the state to resume from
        best.pth             the EMA weights at the best val score by evaluation.save_best (meta.best)
        student_config.py    the mmpose config of the student (student runs)
        report/              export-report's output (report/metrics.json: the report's numbers)

    The no-distillation baseline of a run is its sibling folder `supervised`."""

    RUN_JSON, CONFIG, LOG, CHECKPOINT, BEST, MMPOSE_CONFIG, REPORT, METRICS = (
        'run.json', 'pipeline_config.py', 'log.jsonl', 'last.pth', 'best.pth', 'student_config.py', 'report',
        'metrics.json')

    def __init__(self, path):
        self.path = Path(path)
        self.run_json, self.config, self.log_path = (self.path / n for n in (self.RUN_JSON, self.CONFIG, self.LOG))
        self.checkpoint, self.mmpose_config = self.path / self.CHECKPOINT, self.path / self.MMPOSE_CONFIG
        self.best = self.path / self.BEST
        self.report = self.path / self.REPORT
        self.metrics = self.report / self.METRICS

    def baseline(self) -> 'RunFolder':
        return RunFolder(self.path.parent / 'supervised')

    def read_run(self) -> dict:
        if not self.run_json.is_file():
            raise FileNotFoundError(f'{self.run_json}: not a training run (no run.json)')
        return json.loads(self.run_json.read_text())

    def load_config(self, overrides: dict | None = None) -> Config:
        """The pipeline config the run trained with (its own copy, wherever the folder now lies)."""
        return load_config(self.config, overrides)

    def model_config(self) -> Path:
        """The model config of what the run trained."""
        return resolve(self.read_run()['model_config'])

    def read_log(self) -> list[dict]:
        if not self.log_path.is_file():
            return []
        return [json.loads(x) for x in self.log_path.read_text().splitlines() if x.strip()]

    def checkpoints(self) -> list[str]:
        """The checkpoints in the folder (last.pth, best.pth): what makes it hold a run, one a new run
        must not replace unasked. A run that failed before its first checkpoint left at most run.json,
        the config and a few log lines, nothing to resume: a new run replaces them."""
        return [p.name for p in (self.checkpoint, self.best) if p.exists()]

    def finished(self, epochs: int) -> bool:
        log = self.read_log()
        return self.checkpoint.exists() and bool(log) and log[-1].get('epoch') == int(epochs)

    def start(self, cfg: Config, resume: bool, run: dict) -> None:
        """A new run empties the log; the config and run.json are (re)written either way. run.json's
        `config` is the folder's own copy, named relative to it; `source_config` the file it came from."""
        if not resume:
            self.log_path.write_text('')
            self.best.unlink(missing_ok=True)
        source = cfg.pop('config_path', None)  # where it was read from: not part of what trained
        try:
            cfg.dump(str(self.config))
        finally:
            if source is not None:
                cfg.config_path = source
        run = dict(run, config=self.CONFIG, source_config=repo_relative(source) if source else None)
        with open(self.run_json, 'w') as f:
            json.dump(run, f, indent=1)

    def log(self, record: dict) -> None:
        from outputs.files import finite
        with open(self.log_path, 'a') as f:
            f.write(json.dumps(finite(record)) + '\n')

    def save(self, model, optimizer, ema, epoch: int, step: int, meta: dict) -> None:
        """EMA weights as the checkpoint's state_dict (what is evaluated and exported), plus the state
        a resumed run continues from bit for bit."""
        from teachers.checkpoints import save_checkpoint
        save_checkpoint(self.checkpoint, ema.module.state_dict(), meta,
                        train_state=dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                                         ema=ema.state_dict(), torch_rng=torch.get_rng_state(),
                                         epoch=epoch, step=step))

    def best_score(self, key: str) -> float:
        """The best val score by `key` logged so far (a resumed run keeps its best), or -inf."""
        return max([r['best']['value'] for r in self.read_log() if r.get('best', {}).get('metric') == key],
                   default=float('-inf'))

    def save_best(self, ema, meta: dict) -> None:
        from teachers.checkpoints import save_checkpoint
        save_checkpoint(self.best, ema.module.state_dict(), meta)

    def scored_checkpoint(self) -> tuple[Path, str]:
        """The checkpoint a report scores and how to name it: best.pth when the run kept one (mmpose
        reports its save_best checkpoint), else last.pth."""
        best = [r['best'] for r in self.read_log() if 'best' in r]
        if self.best.exists() and best:
            best = best[-1]
            return self.best, f"best.pth (epoch {best['epoch']}, {best['metric']} {100 * best['value']:.1f})"
        log = self.read_log()
        return self.checkpoint, f"last.pth (epoch {log[-1]['epoch'] if log else '?'})"

    def resume(self, model, optimizer, ema) -> tuple[int, int]:
        """Load the resume state into model, optimizer and EMA; returns (epoch, step) reached."""
        from teachers.checkpoints import load_checkpoint
        if not self.checkpoint.exists():
            raise FileNotFoundError(f'{self.checkpoint}: nothing to resume from')
        state = load_checkpoint(self.checkpoint)['train_state']
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        ema.load_state_dict(state['ema'])
        torch.set_rng_state(state['torch_rng'])
        return int(state['epoch']), int(state['step'])

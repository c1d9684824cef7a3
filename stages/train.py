"""Stage two: train the student on the datasets' union skeleton from the cached teacher targets.

A run spec (recipe, device, model, instances: `run_spec`), a target source behind one call per batch
(`TargetSource`), then one loop, top to bottom (nanoGPT style); the run folder's layout is
pipeline.run_folder.RunFolder's, the training math is in training/. Modes:
  offline     targets from the cache (the product): each epoch reads one view plane per teacher into
              memory, the crops are replayed from the stored view records, photometric aug on top.
  online      the same views, but the teachers run live on their own crops (the baseline it beats).
  supervised  ground truth only (the no-distillation baseline; also trains the demo's teachers).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cache.store import open_cache
from data.images import check_image_files, read_image
from data.photometric import photometric_augment
from data.datasets import datasets_union
from data.skeletons import model_skeleton, union_indices
from data.views import mirror_matrix, teacher_inputs, view_geometry, view_keypoints, warp_crop
from outputs.export import dataset_meta_from_skeleton
from data.files import to_plain
from pipeline.config import BEST_METRICS, repo_relative, resolve, seed_everything, supervised_model
from outputs.evaluate import headline_metric
from outputs.tensorboard import LOG_EVERY, TrainBoard
from pipeline.cache_check import check_cache
from pipeline.models import head_loss_beta
from pipeline.run import (cache_path, dist_info, pick_device, split_instances, split_views, stage_view_indices,
                          view_stages)
from pipeline.run_folder import RunFolder
from stages.evaluation import evaluate_model
from teachers.checkpoints import init_backbone, load_model
from teachers.rtmpose import build_model
from training.distributed import convert_sync_batchnorm, global_batch_sizes, rank_items, reduce_sums
from training.ema import ModelEMA
from training.losses import kd_weight_schedule
from training.schedule import cosine_start_step, learning_rate, lr_at
from training.step import StepSettings, TrainStep, make_optimizer, precision
from training.targets import teacher_targets_offline, teacher_targets_online


def epoch_view(seed: int, epoch: int, stage_views: list, first_epochs: list) -> int:
    """The cache view every instance uses in `epoch`: within its schedule stage, a fresh permutation of
    the stage's views every V epochs, so all are used; one view per epoch means one contiguous cache
    plane per epoch. `stage_views`: per stage, its views' indices; `first_epochs`: each stage's first epoch."""
    stage = max(s for s, first in enumerate(first_epochs) if epoch >= first)
    views = np.asarray(stage_views[stage])
    cycle, pos = divmod(epoch - first_epochs[stage], len(views))
    perm = np.random.Generator(np.random.Philox(key=seed, counter=[cycle, 0x5EED, stage, 0])).permutation(len(views))
    return int(views[perm[pos]])


def mirrored_items(seed: int, epoch: int, n: int) -> np.ndarray:
    """(n,) bool: which instances see their view mirrored in `epoch` (train.flip_views), p = 1/2."""
    return np.random.Generator(np.random.Philox(key=seed, counter=[epoch, 0xF11F, 0, 0])).random(n) < 0.5


def photometric_policy(value):
    """Config value -> policy name of data.photometric (True means 'main'; False/None: off)."""
    if value is True:
        return 'main'
    return value or None


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.Generator(np.random.Philox(key=seed, counter=[epoch, 0x0D3D, 0, 0])).permutation(n)


class TrainCrops(torch.utils.data.Dataset):
    """Item i of the current view: the student crop (+ photometric aug), ground-truth SimCC labels for
    the model's joints, and (online mode) each teacher's native crop of the same view. With `mirror`
    (train.flip_views) about half the items of an epoch are the view's mirror (data.views.mirror_matrix),
    their labels' joints swapped; the caller mirrors their cached rows (item['mirrored']). `photometric`:
    the data.photometric policy, set by the train loop per schedule stage (None: off)."""

    def __init__(self, table, views, student_size, codec, model_joints, union_flip, teacher_sizes=None,
                 photometric=None, seed=0, mirror=False):
        """model_joints: the model's joints' indices in the table's union; union_flip: the union's
        Skeleton.flip_indices."""
        self.table, self.views, self.union_flip = table, views, np.asarray(union_flip)
        self.student_size, self.codec, self.model_joints = tuple(student_size), codec, model_joints
        self.teacher_sizes = teacher_sizes or {}
        self.photometric, self.seed, self.mirror = photometric, seed, mirror
        self.view, self.epoch, self.mirrored = 0, 0, np.zeros(len(table), bool)

    def set_epoch(self, epoch, view):
        self.epoch, self.view = epoch, view
        self.mirrored = mirrored_items(self.seed, epoch, len(self.table)) if self.mirror \
            else np.zeros(len(self.table), bool)

    def __len__(self):
        return len(self.table)

    def crop(self, img, i, size):
        """Item i's crop of the current view at a model's input size (mirrored when drawn so) + its matrix."""
        M = view_geometry(self.table.bbox[i], self.views[self.view, i], size)[4]
        if self.mirrored[i]:
            M = mirror_matrix(M, size)
        return warp_crop(img, M, size), M

    def __getitem__(self, i):
        t, view = self.table, self.views[self.view, i]
        img = read_image(t.image_path[i])
        crop, M = self.crop(img, i, self.student_size)
        kpts, vis = view_keypoints(t.keypoints[i], t.keypoints_visible[i] * t.annotated[i], view, M,
                                   self.union_flip)
        if self.mirrored[i]:
            kpts, vis = kpts[self.union_flip], vis[self.union_flip]
        kpts, vis = kpts[self.model_joints], vis[self.model_joints]
        labels = self.codec.encode(kpts[None], vis[None])
        if self.photometric:
            rng = np.random.Generator(np.random.Philox(key=self.seed, counter=[self.epoch, i, 0xA06, 0]))
            crop = photometric_augment(crop, rng, policy=self.photometric)
        item = dict(index=i, img=crop, mirrored=bool(self.mirrored[i]),
                    target_x=labels['keypoint_x_labels'][0].astype(np.float32),
                    target_y=labels['keypoint_y_labels'][0].astype(np.float32),
                    target_weight=labels['keypoint_weights'][0].astype(np.float32))
        if self.teacher_sizes:  # online: each teacher's native crop of the view box, and its scale
            crops, box_scales = teacher_inputs([img], t.bbox[i], view, self.teacher_sizes, mirrored=[self.mirrored[i]])
            item.update({f'crop_{name}': c[0] for name, c in crops.items()}, box_scale=box_scales[0])
        return item


class PlanePrefetch:
    """Reads the next epoch's cache planes in a thread while this epoch trains: the whole view plane, or
    only cache rows `rows` (sorted; a rank of a distributed run holds only its own rows). A read that
    fails (a chunk failing its checksum) is raised by get() in the main thread, before any step uses it."""

    def __init__(self, cache, teachers):
        self.cache, self.teachers, self.thread, self.result = cache, teachers, None, None

    def read(self, teacher, view, rows):
        return self.cache.read_view_plane(teacher, view) if rows is None else \
            self.cache.read_rows(teacher, view, rows)

    def start(self, view, rows=None):
        def work():
            try:
                self.result = (view, rows, {t: self.read(t, view, rows) for t in self.teachers})
            except Exception as error:  # noqa: BLE001 - handed to the main thread as raised
                self.result = (view, rows, error)
        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def get(self, view, rows=None):
        if self.thread is None:
            self.start(view, rows)
        self.thread.join()
        got_view, got_rows, planes = self.result
        if got_view != view or (got_rows is None) != (rows is None) or \
                (rows is not None and not np.array_equal(got_rows, rows)):
            self.start(view, rows)
            return self.get(view, rows)
        self.thread = None
        if isinstance(planes, Exception):
            raise planes
        return planes


@dataclass
class RunSpec:
    """What is trained, on what, with which recipe, where: everything the loop reads."""
    mode: str
    tc: dict  # the training recipe (pipeline.config.TRAIN_SCHEMA keys)
    epochs: int
    batch_size: int
    num_workers: int
    device: torch.device
    rank: int
    world: int
    seed: int
    model_cfg_path: str
    work_dir: Path
    datasets: list
    model: torch.nn.Module
    table: object  # the split's full instance table (its rows are the cache rows)
    index_of_row: np.ndarray  # rows of that table this run trains on
    val_table: object  # the val split, loaded by the pre-flight check, scored at every validation


def run_spec(cfg, mode, epochs, batch_size, device, resume, work_dir, as_teacher, num_workers, overwrite) -> RunSpec:
    """Settle the recipe, the device, the work dir and the model (seeded, backbone initialised)."""
    tc = dict(to_plain(cfg.train))
    if as_teacher is not None:
        if mode != 'supervised':
            raise ValueError('--as-teacher trains a teacher on ground truth: use --mode supervised')
        spec = supervised_model(cfg, as_teacher)
        tc.update(to_plain(cfg.teacher_train))
        tc.update(to_plain(spec.train))  # this model's own overrides
        work_dir = Path(work_dir) if work_dir else resolve(spec.checkpoint).parent
        datasets = [spec.dataset]
    else:
        spec = cfg.student
        work_dir = Path(work_dir) if work_dir else resolve(cfg.work_dir) / mode
        datasets = list(cfg.datasets)
    device = pick_device(device)
    rank, world = dist_info()
    if world > 1:
        torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    seed = int(cfg.seed)
    seed_everything(seed + rank)
    folder = RunFolder(work_dir)
    held = folder.checkpoints()  # a log without one is a run that failed early: started over
    if held and not (resume or overwrite):
        raise FileExistsError(f'{work_dir}: holds a training run already ({" / ".join(held)}); '
                              'pass --resume to continue it or --overwrite to replace it')
    table = split_instances(cfg, 'train')
    val_table = preflight(cfg, table, datasets)
    work_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(str(resolve(spec.config))).to(device)
    skeleton = model_skeleton(model.skeleton_name, datasets_union(cfg.datasets))
    if skeleton.num_joints != model.num_keypoints:
        raise ValueError(f'{spec.config}: the head predicts {model.num_keypoints} joints but the skeleton '
                         f'{model.skeleton_name!r} has {skeleton.num_joints} ({", ".join(skeleton.joint_names)}); '
                         'set head.out_channels to that')
    if spec.init_backbone and not resume:
        # mmpose's init_cfg=dict(type='Pretrained', prefix='backbone.'): RTMPose-s starts from a CSPNeXt
        # trained on COCO + AIC, RTMPose's MPII model from a backbone trained on COCO.
        source = resolve(spec.init_backbone)
        widen = spec.widen_backbone
        init_backbone(model, source, widen=widen)
        print(f'[{as_teacher or mode}] backbone initialised from {source}' + ' (widened x2)' * widen)
    return RunSpec(mode=mode, tc=tc, epochs=int(epochs or tc['epochs']),
                   batch_size=int(batch_size or tc['batch_size']),
                   num_workers=int(tc['num_workers'] if num_workers is None else num_workers),
                   device=device, rank=rank, world=world, seed=seed, model_cfg_path=str(spec.config),
                   work_dir=work_dir, datasets=datasets, model=model, table=table,
                   index_of_row=np.flatnonzero(np.isin(table.dataset, datasets)), val_table=val_table)


def preflight(cfg, table, datasets: list):
    """Every input the run reads after its first step, checked before it, so that a missing one fails
    now in one line naming it, not after an epoch: the val split (annotation, detection and head-box
    files; loaded here once, for every validation) and the image folders and files of the trained
    datasets in both splits. The train annotations are `table` already; the offline cache is checked
    by TargetSource, also before the first step. Returns the val table."""
    val_table = split_instances(cfg, 'val')
    for split, t in (('train', table), ('val', val_table)):
        for name in datasets:
            part = cfg.datasets[name].get(split)  # absent: the dataset has no such split
            if part is not None and not resolve(part.image_root).is_dir():
                raise FileNotFoundError(f'{resolve(part.image_root)}: image folder not found '
                                        f'(datasets.{name}.{split}.image_root)')
        check_image_files(t.image_path[np.isin(t.dataset, datasets)])
    return val_table


class TargetSource:
    """Where a batch's teacher targets come from, behind one call per batch: the cache (offline: one
    view plane per teacher in memory per epoch, the next one read ahead), the live teachers (online:
    on their own crops of the same replayed views) or nowhere (supervised)."""

    def __init__(self, cfg, run: RunSpec, stages: list[dict]):
        self.run, self.cache, self.models, self.specs, self.prefetch, self.planes = run, None, {}, {}, None, None
        self.plane_rows = None
        if run.mode == 'offline':
            path = cache_path(cfg, 'train')
            self.cache = open_cache(path)
            check_cache(cfg, 'train', self.cache, run.table, stages)
            self.views = self.cache.views
            self.stage_views = stage_view_indices(self.cache.manifest['views']['stages'], stages)
            self.specs = {t: self.cache.teacher_spec(t) for t in self.cache.teacher_names}
            self.prefetch = PlanePrefetch(self.cache, list(self.specs))
            # the teachers' forward time: paid once in the dump, and what one epoch online would pay
            stats = self.cache.manifest.get('stats', {})
            self.teacher_seconds_paid = sum(st['forward_seconds'] for st in stats.values())
            self.teacher_seconds_per_epoch = sum(st['forward_seconds'] / max(st['rows'], 1)
                                                 for st in stats.values()) * len(run.index_of_row)
        else:
            self.views = split_views(cfg, run.table, stages)
            self.stage_views = stage_view_indices(stages, stages)
            if run.mode == 'online':
                for name, t in cfg.teachers.items():
                    self.models[name] = load_model(resolve(t.config), resolve(t.checkpoint), device=run.device).eval()
        self.teacher_sizes = {n: tuple(m.input_size) for n, m in self.models.items()}  # online: their crops
        self.union = datasets_union(cfg.datasets)
        self.flip_indices = model_skeleton(run.model.skeleton_name, self.union).flip_indices  # the student's joints

    def teacher_seconds_saved(self, epochs: int) -> float | None:
        """Teacher compute the cache saved after `epochs` epochs (negative before break-even); offline only."""
        return epochs * self.teacher_seconds_per_epoch - self.teacher_seconds_paid if self.cache else None

    def start_epoch(self, view: int, next_view: int | None, rows=None, next_rows=None) -> None:
        """The epoch's planes in memory, the next epoch's read ahead; `rows`/`next_rows`: the sorted cache
        rows this rank trains on in each (None: one process, the whole plane)."""
        if self.prefetch:
            self.planes, self.plane_rows = self.prefetch.get(view, rows), rows
            if next_view is not None:
                self.prefetch.start(next_view, next_rows)

    def __call__(self, batch, num_joints: int) -> dict:
        run, model = self.run, self.run.model
        if self.cache:
            rows = self.run.index_of_row[batch['index'].numpy()]
            if self.plane_rows is not None:  # positions in this rank's rows of the plane
                rows = np.searchsorted(self.plane_rows, rows)
            return teacher_targets_offline(self.planes, rows, self.specs, num_joints, run.device,
                                           mirrored=batch['mirrored'], flip_indices=self.flip_indices)
        if self.models:
            return teacher_targets_online(self.models, batch, tuple(model.input_size), model.codec.simcc_split_ratio,
                                          self.union, run.device, run.batch_size)
        return {}


def train(cfg, mode='offline', epochs=None, batch_size=None, device=None, resume=False, work_dir=None,
          as_teacher=None, num_workers=None, overwrite=False):
    run = run_spec(cfg, mode, epochs, batch_size, device, resume, work_dir, as_teacher, num_workers, overwrite)
    tc, model, device, rank, world, seed = run.tc, run.model, run.device, run.rank, run.world, run.seed
    own_views = cfg.pretrain[as_teacher].views if as_teacher in cfg.pretrain else None
    stages = view_stages(cfg, 'train', own_views)  # a pretrain model may have its own views (un-augmented)
    source = TargetSource(cfg, run, stages)
    first_epochs = [st['first_epoch'] for st in stages]
    photometric = [photometric_policy(tc['photometric'])] + (
        [photometric_policy(cfg.stage2.photometric)] if len(stages) > 1 else [])
    model_joints = union_indices(model_skeleton(model.skeleton_name, source.union), source.union)
    dataset = TrainCrops(run.table.select(run.index_of_row), source.views[:, run.index_of_row],
                         tuple(model.input_size), model.codec, model_joints, source.union.flip_indices,
                         teacher_sizes=source.teacher_sizes,
                         seed=seed, mirror=bool(tc['flip_views']))
    lr = learning_rate(tc['base_lr'], tc['auto_scale_lr'], run.batch_size * world)
    if bool(tc['sync_bn']) and world > 1:
        model = convert_sync_batchnorm(model, device)
    optimizer = make_optimizer(model, tc['weight_decay'], lr)
    ema = ModelEMA(model, momentum=float(tc['ema_momentum']))
    global_batch = run.batch_size * world
    steps_per_epoch = len(global_batch_sizes(len(dataset), global_batch, world))
    total_steps = run.epochs * steps_per_epoch
    cosine_start = cosine_start_step(run.epochs, steps_per_epoch)
    # the model's own SimCC loss beta (RTMPose: 10)
    settings = StepSettings.from_recipe(tc, device, head_loss_beta(run.model_cfg_path),
                                        supervised=mode == 'supervised', amp_channels_last=precision(tc, device))
    device_ids = [device.index] if device.type == 'cuda' else None
    step_fn = TrainStep(model, optimizer, ema, settings, world=world, wrap=None if world == 1 else (
        lambda m: torch.nn.parallel.DistributedDataParallel(m, device_ids=device_ids)))
    folder = RunFolder(run.work_dir)
    start_epoch, step = folder.resume(model, optimizer, ema) if resume else (0, 0)
    if rank == 0:
        folder.start(cfg, resume, dict(
            mode=mode, as_teacher=as_teacher, model_config=repo_relative(run.model_cfg_path),
            skeleton=model.skeleton_name, epochs=run.epochs,
            batch_size=run.batch_size, world=world, lr=lr, datasets=run.datasets,
            cache=repo_relative(cache_path(cfg, 'train')) if source.cache else None, train=tc))
    board = TrainBoard(folder.tensorboard, step) if rank == 0 else None

    for epoch in range(start_epoch, run.epochs):
        t_epoch = time.perf_counter()
        stage = sum(epoch >= first for first in first_epochs) - 1
        view = epoch_view(seed, epoch, source.stage_views, first_epochs)
        dataset.photometric = photometric[stage]
        dataset.set_epoch(epoch, view)
        order = rank_items(epoch_order(seed, epoch, len(dataset)), rank, world, global_batch)
        rows = next_rows = None
        if world > 1:  # a rank reads only its own rows of the view planes
            rows = plane_rows(run, order)
            next_rows = plane_rows(run, rank_items(epoch_order(seed, epoch + 1, len(dataset)), rank, world,
                                                   global_batch))
        source.start_epoch(view, epoch_view(seed, epoch + 1, source.stage_views, first_epochs)
                           if epoch + 1 < run.epochs else None, rows, next_rows)
        sizes = global_batch_sizes(len(dataset), global_batch, world)
        loader = torch.utils.data.DataLoader(dataset, batch_size=run.batch_size, sampler=order.tolist(),
                                             num_workers=run.num_workers, pin_memory=device.type == 'cuda',
                                             drop_last=False, persistent_workers=False)
        step_fn.forward.train()
        n_seen, sums = 0, {}
        bar = tqdm(loader, desc=f'{mode} epoch {epoch + 1}/{run.epochs}', leave=False, disable=rank != 0)
        for i, batch in enumerate(bar):
            for g in optimizer.param_groups:
                g['lr'] = lr_at(step, total_steps, lr, int(tc['warmup_steps']), cosine_start=cosine_start)
            loss, parts = step_fn(batch, source(batch, len(model_joints)),
                                  kd_scale=kd_weight_schedule(epoch, run.epochs, decay=bool(tc['kd_decay'])),
                                  global_batch=sizes[i])
            step += 1
            n = len(batch['index'])
            n_seen += n
            for k, v in parts.items():  # summed on the device: no host sync in the step
                sums[k] = sums.get(k, 0.0) + v.detach() * n
            if step % LOG_EVERY == 0:
                bar.set_postfix(loss=f'{float(loss.detach()):.4f}')
            if board and (step % LOG_EVERY == 0 or i == len(loader) - 1):
                board.step(step, parts, optimizer.param_groups[0]['lr'], step_fn.grad_norm())
        if world > 1:
            n_seen, sums = reduce_sums(n_seen, sums, device)
        end_epoch(cfg, run, folder, model, optimizer, ema, epoch, step, n_seen, sums, time.perf_counter() - t_epoch,
                  mode, tc, board, source.teacher_seconds_saved(epoch + 1))
    if board:
        board.close()
    if world > 1:
        torch.distributed.destroy_process_group()
    if rank == 0 and as_teacher is None:
        from outputs.export import write_mmpose_config
        write_mmpose_config(resolve(run.model_cfg_path), folder.mmpose_config,
                            dataset_meta_from_skeleton(model_skeleton(model.skeleton_name, source.union)))
    return run.work_dir


def plane_rows(run: RunSpec, items: np.ndarray) -> np.ndarray:
    """The sorted cache rows of dataset items `items`: the rows of a view plane a rank reads."""
    return np.sort(run.index_of_row[items])


def end_epoch(cfg, run, folder, model, optimizer, ema, epoch, step, n_seen, sums, secs, mode, tc, board,
              teacher_seconds_saved) -> None:
    """The epoch's log record (losses, throughput; validation of the EMA model every val_interval
    epochs and at the end), its TensorBoard scalars, and the checkpoint every checkpoint_interval epochs
    and at the end."""
    sums = {k: float(v) for k, v in sums.items()}
    record = dict(epoch=epoch + 1, step=step, lr=optimizer.param_groups[0]['lr'],
                  images_per_s=n_seen / secs, seconds=secs,
                  loss_total=sum(sums.values()) / max(n_seen, 1),
                  **{f'loss_{k}': v / max(n_seen, 1) for k, v in sums.items()})
    last = epoch + 1 == run.epochs
    if run.rank != 0:
        return
    meta = dict(dataset_meta=dataset_meta_from_skeleton(model_skeleton(model.skeleton_name, datasets_union(cfg.datasets))),
                epoch=epoch + 1, iter=step,
                mode=mode, model_config=run.model_cfg_path)
    if last or (epoch + 1) % int(tc['val_interval']) == 0:
        record['val'] = evaluate_model(cfg, ema.module, device=run.device, datasets=run.datasets, table=run.val_table)
        key = cfg.evaluation.save_best
        score = headline_metric(record['val'], key) if key else None
        if score is not None and score > folder.best_score(key):  # mmpose's save_best, rule 'greater'
            folder.save_best(ema, dict(meta, best=dict(metric=key, value=score)))
            record['best'] = dict(metric=key, value=score, epoch=epoch + 1)
    folder.log(record)
    print(f'[{mode}] epoch {epoch + 1}/{run.epochs} ' + ' '.join(
        f'{k}={v:.4g}' for k, v in record.items() if isinstance(v, float)))
    val = {f'{ds}/{m}': v for ds in record.get('val', {}) for m in BEST_METRICS
           if (v := headline_metric(record['val'], f'{ds}/{m}')) is not None}
    if 'val' in record:
        print(f'[{mode}] val: ' + ' '.join(f'{k}={100 * v:.1f}' for k, v in val.items()))
    board.epoch(step, record, val, teacher_seconds_saved)
    if last or (epoch + 1) % int(tc['checkpoint_interval']) == 0:
        folder.save(model, optimizer, ema, epoch + 1, step, meta)

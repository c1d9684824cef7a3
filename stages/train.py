"""Stage two: train the union-21 student from the cached teacher targets.

One loop, top to bottom (nanoGPT style). Modes:
  offline     targets from the cache (the product): each epoch reads one view plane per teacher into
              memory, the crops are replayed from the stored view records, photometric aug on top.
  online      the same views, but the teachers run live on their own crops (the baseline it beats).
  supervised  ground truth only (the no-distillation baseline; also trains the demo's teachers).
"""
from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cache.manifest import diff_manifest
from cache.store import open_cache
from data.images import read_image
from data.photometric import photometric_augment
from data.skeletons import union_indices
from data.views import replay_view, view_box, view_keypoints
from outputs.export import dataset_meta_from_skeleton
from outputs.files import finite
from pipeline.config import resolve, seed_everything, supervised_model, to_plain
from stages.common import (MATCH_KEYS, cache_path, dist_info, expected_manifest, pick_device, split_instances,
                           split_views)
from stages.evaluation import evaluate_model
from teachers.checkpoints import init_backbone, load_checkpoint, load_model, save_checkpoint
from teachers.rtmpose import build_model
from training.ema import ModelEMA
from training.losses import distillation_loss, kd_weight_schedule
from training.schedule import lr_at, param_groups, scaled_lr
from training.targets import teacher_targets_offline, teacher_targets_online


def epoch_view(seed: int, epoch: int, num_views: int) -> int:
    """The view every instance uses in `epoch`: a fresh permutation of the V views every V epochs,
    so all views are used; one view per epoch means one contiguous cache plane per epoch."""
    cycle, pos = divmod(epoch, num_views)
    perm = np.random.Generator(np.random.Philox(key=seed, counter=[cycle, 0x5EED, 0, 0])).permutation(num_views)
    return int(perm[pos])


def photometric_policy(value):
    """Config value -> policy name of data.photometric (True means 'main'; False/None: off)."""
    if value is True:
        return 'main'
    return value or None


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.Generator(np.random.Philox(key=seed, counter=[epoch, 0x0D3D, 0, 0])).permutation(n)


class TrainCrops(torch.utils.data.Dataset):
    """Item i of the current view: the student crop (+ photometric aug), ground-truth SimCC labels for
    the model's joints, and (online mode) each teacher's native crop of the same view."""

    def __init__(self, table, views, student_size, codec, model_joints, teacher_sizes=None,
                 photometric=True, seed=0):
        self.table, self.views = table, views
        self.student_size, self.codec, self.model_joints = tuple(student_size), codec, model_joints
        self.teacher_sizes = teacher_sizes or {}
        self.photometric, self.seed = photometric, seed
        self.view, self.epoch = 0, 0

    def set_epoch(self, epoch, view):
        self.epoch, self.view = epoch, view

    def __len__(self):
        return len(self.table)

    def __getitem__(self, i):
        t, view = self.table, self.views[self.view, i]
        img = read_image(t.image_path[i])
        crop, M = replay_view(img, t.bbox[i], view, self.student_size)
        kpts, vis = view_keypoints(t.keypoints[i], t.keypoints_visible[i] * t.annotated[i], view, M)
        kpts, vis = kpts[self.model_joints], vis[self.model_joints]
        labels = self.codec.encode(kpts[None], vis[None])
        if self.photometric:
            rng = np.random.Generator(np.random.Philox(key=self.seed, counter=[self.epoch, i, 0xA06, 0]))
            crop = photometric_augment(crop, rng, policy=self.photometric)
        item = dict(index=i, img=crop, target_x=labels['keypoint_x_labels'][0].astype(np.float32),
                    target_y=labels['keypoint_y_labels'][0].astype(np.float32),
                    target_weight=labels['keypoint_weights'][0].astype(np.float32))
        for name, size in self.teacher_sizes.items():  # each teacher's native crop of the view box
            item[f'crop_{name}'] = replay_view(img, t.bbox[i], view, size)[0]
        if self.teacher_sizes:  # relates the teachers' bins to the student's (per instance)
            item['box_scale'] = view_box(t.bbox[i], view)[1]
        return item


class PlanePrefetch:
    """Reads the next epoch's cache planes in a thread while this epoch trains."""

    def __init__(self, cache, teachers):
        self.cache, self.teachers, self.thread, self.result = cache, teachers, None, None

    def start(self, view):
        def work():
            self.result = (view, {t: self.cache.read_view_plane(t, view) for t in self.teachers})
        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def get(self, view):
        if self.thread is None:
            self.start(view)
        self.thread.join()
        got_view, planes = self.result
        if got_view != view:
            self.start(view)
            return self.get(view)
        self.thread = None
        return planes


def train(cfg, mode='offline', epochs=None, batch_size=None, device=None, resume=False, work_dir=None,
          as_teacher=None, num_workers=None, overwrite=False):
    tc = dict(to_plain(cfg.train))
    if as_teacher is not None:
        if mode != 'supervised':
            raise ValueError('--as-teacher trains a teacher on ground truth: use --mode supervised')
        spec = supervised_model(cfg, as_teacher)
        tc.update(to_plain(cfg.get('teacher_train', {})))
        tc.update(to_plain(spec.get('train', {})))  # this model's own overrides
    epochs = int(epochs or tc['epochs'])
    batch_size = int(batch_size or tc['batch_size'])
    num_workers = int(tc['num_workers'] if num_workers is None else num_workers)
    device = pick_device(device)
    rank, world = dist_info()
    if world > 1:
        torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    seed = int(cfg.seed)
    seed_everything(seed + rank)

    # -- what is trained, on what --------------------------------------------------------------
    if as_teacher is not None:
        model_cfg_path = spec.config
        work_dir = Path(work_dir) if work_dir else resolve(spec.checkpoint).parent
        datasets = [spec.dataset]
    else:
        spec = cfg.student
        model_cfg_path = cfg.student.config
        work_dir = Path(work_dir) if work_dir else resolve(cfg.work_dir) / mode
        datasets = list(cfg.datasets)
    if not (resume or overwrite) and any((work_dir / f).exists() for f in ('last.pth', 'log.jsonl')):
        raise FileExistsError(f'{work_dir}: holds a training run already (last.pth / log.jsonl); '
                              'pass --resume to continue it or --overwrite to replace it')
    work_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(str(resolve(model_cfg_path))).to(device)
    if spec.get('init_backbone') and not resume:
        # mmpose's init_cfg=dict(type='Pretrained', prefix='backbone.'): RTMPose-s starts from a CSPNeXt
        # trained on COCO + AIC, RTMPose's MPII model from a backbone trained on COCO.
        source = resolve(spec.init_backbone)
        init_backbone(model, source)
        print(f'[{as_teacher or mode}] backbone initialised from {source}')
    skeleton = model.skeleton_name
    model_joints = union_indices(skeleton)
    student_size = tuple(model.input_size)
    split = model.codec.simcc_split_ratio

    table = split_instances(cfg, 'train')
    keep = np.isin(table.dataset, datasets)
    index_of_row = np.flatnonzero(keep)  # rows of the full table (= cache rows) used here

    # -- views and targets ---------------------------------------------------------------------
    cache, models, teacher_specs = None, {}, {}
    if mode == 'offline':
        path = cache_path(cfg, 'train')
        cache = open_cache(path)
        diffs = diff_manifest(expected_manifest(cfg, 'train', cache.n_views, table), cache.manifest, keys=MATCH_KEYS)
        if diffs:
            raise RuntimeError(f'{path}: this cache was not built from this config; refusing it. '
                               'Differences:\n  ' + '\n  '.join(diffs))
        pending = {t: len(cache.pending_units(t)) for t in cache.teacher_names}
        if any(pending.values()):
            raise RuntimeError(f'{path}: the dump is not finished ({pending} units pending); '
                               'run dump-teachers again to resume it')
        views = cache.views
        teacher_specs = {t: cache.teacher_spec(t) for t in cache.teacher_names}
    else:
        view_cfg = spec.get('views', cfg.views)  # a pretrain model may have its own (e.g. un-augmented)
        views = split_views(cfg, table, int(view_cfg.num_views), policy=view_cfg.get('policy'))
        if mode == 'online':
            for name, t in cfg.teachers.items():
                models[name] = load_model(resolve(t.config), resolve(t.checkpoint), device=device).eval()
    num_views = views.shape[0]
    sub_table = table.select(index_of_row)
    dataset = TrainCrops(sub_table, views[:, index_of_row], student_size, model.codec, model_joints,
                         teacher_sizes={n: tuple(m.input_size) for n, m in models.items()},
                         photometric=photometric_policy(tc['photometric']), seed=seed)

    # -- optimisation --------------------------------------------------------------------------
    lr = scaled_lr(float(tc['base_lr']), int(tc['base_batch_size']), batch_size * world)
    optimizer = torch.optim.AdamW(param_groups(model, float(tc['weight_decay'])), lr=lr)
    ema = ModelEMA(model, momentum=float(tc['ema_momentum']))
    steps_per_epoch = math.ceil(len(dataset) / (batch_size * world))
    total_steps = epochs * steps_per_epoch
    use_amp = bool(tc['amp']) and device.type == 'cuda'
    if bool(tc['channels_last']) and device.type == 'cuda':
        model = model.to(memory_format=torch.channels_last)
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index]
                                                                if device.type == 'cuda' else None)

    start_epoch, step = 0, 0
    ckpt_path = work_dir / 'last.pth'
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f'{ckpt_path}: nothing to resume from')
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state['train_state']['model'])
        optimizer.load_state_dict(state['train_state']['optimizer'])
        ema.load_state_dict(state['train_state']['ema'])
        torch.set_rng_state(state['train_state']['torch_rng'])
        start_epoch, step = int(state['train_state']['epoch']), int(state['train_state']['step'])

    log_path = work_dir / 'log.jsonl'
    if not resume and rank == 0:
        log_path.write_text('')
    # The resolved pipeline config travels with the run, so export-report sees exactly what trained.
    if rank == 0:
        cfg.dump(str(work_dir / 'pipeline_config.py'))
        with open(work_dir / 'run.json', 'w') as f:
            json.dump(dict(mode=mode, as_teacher=as_teacher, config=str(work_dir / 'pipeline_config.py'),
                           source_config=str(getattr(cfg, 'config_path', '')),
                           model_config=str(model_cfg_path), skeleton=skeleton, epochs=epochs,
                           batch_size=batch_size, world=world, lr=lr, datasets=datasets,
                           cache=str(cache_path(cfg, 'train')) if cache else None,
                           train=tc), f, indent=1)

    prefetch = PlanePrefetch(cache, list(teacher_specs)) if cache else None
    weights = dict(tc['loss_weights'])
    if mode == 'supervised':
        weights = {'gt': 1.0}
    num_joints = len(model_joints)

    def save(epoch):
        if rank != 0:
            return
        meta = dict(dataset_meta=dataset_meta_from_skeleton(skeleton), epoch=epoch, iter=step,
                    mode=mode, model_config=str(model_cfg_path))
        save_checkpoint(ckpt_path, ema.module.state_dict(), meta,
                        train_state=dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                                         ema=ema.state_dict(), torch_rng=torch.get_rng_state(),
                                         epoch=epoch, step=step))

    for epoch in range(start_epoch, epochs):
        t_epoch = time.perf_counter()
        view = epoch_view(seed, epoch, num_views)
        dataset.set_epoch(epoch, view)
        planes = None
        if prefetch:
            planes = prefetch.get(view)
            if epoch + 1 < epochs:
                prefetch.start(epoch_view(seed, epoch + 1, num_views))
        order = epoch_order(seed, epoch, len(dataset))[rank::world]
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=order.tolist(),
                                             num_workers=num_workers, pin_memory=device.type == 'cuda',
                                             drop_last=False, persistent_workers=False)
        train_model.train()
        n_seen, sums = 0, {}
        bar = tqdm(loader, desc=f'{mode} epoch {epoch + 1}/{epochs}', leave=False, disable=rank != 0)
        for batch in bar:
            for g in optimizer.param_groups:
                g['lr'] = lr_at(step, total_steps, lr, int(tc['warmup_steps']))
            imgs = batch['img'].to(device, non_blocking=True)
            x = model.normalize(imgs)
            if bool(tc['channels_last']) and device.type == 'cuda':
                x = x.contiguous(memory_format=torch.channels_last)
            targets = dict(gt_x=batch['target_x'].to(device), gt_y=batch['target_y'].to(device),
                           gt_weights=batch['target_weight'].to(device))
            if mode == 'offline':
                rows = index_of_row[batch['index'].numpy()]
                targets.update(teacher_targets_offline(planes, rows, teacher_specs, num_joints, device))
            elif mode == 'online':
                targets.update(teacher_targets_online(models, batch, student_size, split, num_joints,
                                                      device, batch_size))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                pred_x, pred_y = train_model(x)
            loss, parts = distillation_loss(
                pred_x.float(), pred_y.float(), targets, loss_weights=weights,
                temperature=float(tc['temperature']), overlap_mode=tc['overlap'],
                kd_scale=kd_weight_schedule(epoch, epochs, decay=bool(tc['kd_decay'])),
                gt_reduction=tc['gt_reduction'])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc['grad_clip']:
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(tc['grad_clip']))
            optimizer.step()
            ema.update(model)
            step += 1
            n = len(imgs)
            n_seen += n
            for k, v in parts.items():  # summed on the device: no host sync in the step
                sums[k] = sums.get(k, 0.0) + v.detach() * n
            if step % 20 == 0:
                bar.set_postfix(loss=f'{float(loss.detach()):.4f}')
        secs = time.perf_counter() - t_epoch
        sums = {k: float(v) for k, v in sums.items()}
        record = dict(epoch=epoch + 1, step=step, lr=optimizer.param_groups[0]['lr'],
                      images_per_s=n_seen * world / secs, seconds=secs,
                      loss_total=sum(sums.values()) / max(n_seen, 1),
                      **{f'loss_{k}': v / max(n_seen, 1) for k, v in sums.items()})
        last = epoch + 1 == epochs
        if rank == 0 and (last or (epoch + 1) % int(tc['val_interval']) == 0):
            ema_model = ema.module
            metrics = evaluate_model(cfg, ema_model, device=device, datasets=datasets)
            record['val'] = metrics
        if rank == 0:
            with open(log_path, 'a') as f:
                f.write(json.dumps(finite(record)) + '\n')
            print(f'[{mode}] epoch {epoch + 1}/{epochs} ' + ' '.join(
                f'{k}={v:.4g}' for k, v in record.items() if isinstance(v, float)))
        if last or (epoch + 1) % int(tc['checkpoint_interval']) == 0:
            save(epoch + 1)
    if world > 1:
        torch.distributed.destroy_process_group()
    if rank == 0 and as_teacher is None:
        from outputs.export import write_mmpose_config
        write_mmpose_config(resolve(model_cfg_path), work_dir / 'student_config.py')
    return work_dir


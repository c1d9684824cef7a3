"""One training step of the student in the three modes of stages/train.py, side by side in one run.

    .venv/bin/python benchmarks/train_step.py [--device cuda|cpu] [--batch-size B] [--steps K] [--reps R]
                                              [--warmup W] [--batches NB] [--plane-rows P]
                                              [--students s,t] [--threads N] [--amp on|off] [--quick]

A step = the product's own step (training.step.TrainStep, what stages/train.py runs per batch once the
DataLoader has handed it over), after the mode's targets; every setting is the full-scale config's
(pipeline/configs/coco_mpii_rtmpose-s.py: its train section, teachers, student -s and cache window):
loss weights, temperature, overlap mode, gt_reduction, grad_clip, weight decay, lr, EMA momentum, amp
and channels_last (both on CUDA only; --amp on|off sets the student's bf16 autocast, default the config's).
  supervised  ground-truth SimCC labels only (loss_weights = {gt: 1}).
  offline     + both teachers' targets from an in-memory windowed cache plane: the batch's rows
              reconstructed, moved to the device, scattered into the union's joints
              (training.targets.teacher_targets_offline, the very function the train stage calls).
  online      + both teachers (the config's RTMPose-m COCO 256x192 and MPII 256x256) run live on their
              own native crops of the batch (eval, no_grad, fp16 autocast on CUDA), mapped into the
              student's bins per row (random view boxes, tall to wide)
              (training.targets.teacher_targets_online, as the train stage's online mode).
After each step the loss terms are summed on the device, as the train stage does.
Same student, optimizer and batches for every mode. Weights are random (timing does not depend on them).
Batches: NB batches of random uint8 crops (student 256x192, teachers at their sizes) and GT labels from
the student's codec on random keypoints, generated once. The cache plane is built once: the teachers run
on the batches' teacher crops, their student-bin outputs are windowed with encode_window (the config's
window and tail blocks) and tiled to --plane-rows rows; each batch reads random rows of the plane, so
reconstruction gathers from a realistic, cache-unfriendly plane.
Timing: after warm-up of every mode, `for rep in R: for mode in (rotated order): K steps`, each step timed
alone (torch.cuda.synchronize around it on CUDA), so machine drift hits all modes alike.
Reported per (student, mode): median step seconds and images/s = batch / median; ratios
offline/supervised (goal >= 0.95) and offline/online (goal >= 2.8 for -s, >= 4 for -t) of images/s.
The last stdout line is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cache.window import encode_window  # noqa: E402
from data.geometry import teacher_to_student_bins  # noqa: E402
from data.datasets import datasets_union  # noqa: E402
from data.skeletons import get_skeleton, model_skeleton, union_indices  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.models import head_loss_beta  # noqa: E402
from teachers.targets import run_teacher, to_student_bins  # noqa: E402
from training.ema import ModelEMA  # noqa: E402
from training.losses import kd_weight_schedule  # noqa: E402
from training.schedule import learning_rate  # noqa: E402
from training.step import StepSettings, TrainStep, make_optimizer  # noqa: E402
from training.targets import teacher_targets_offline, teacher_targets_online  # noqa: E402
from teachers.rtmpose import build_model  # noqa: E402

CONFIG = ROOT / 'pipeline' / 'configs' / 'coco_mpii_rtmpose-s.py'
UNION = datasets_union(load_config(CONFIG).datasets)  # the student's joints
# -s is the config's student; -t the same union student one size down.
STUDENTS = {'s': None, 't': 'pipeline/configs/models/rtmpose-t_union21_256x192.py'}
MODES = ('supervised', 'offline', 'online')
GOALS = {'offline_over_supervised': {'s': 0.95, 't': 0.95},
         'offline_over_online': {'s': 2.8, 't': 4.0}}


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_batches(rng, nb: int, batch: int, student_size, codec, teacher_sizes: dict, pin: bool) -> list[dict]:
    """NB batches shaped like TrainCrops items collated: uint8 crops, GT SimCC labels, teacher crops."""
    w, h = student_size
    coco, mpii = union_indices(get_skeleton('coco17'), UNION), union_indices(get_skeleton('mpii16'), UNION)
    k = UNION.num_joints
    batches = []
    for _ in range(nb):
        kpts = rng.uniform((-0.05 * w, -0.05 * h), (1.05 * w, 1.05 * h), (batch, k, 2)).astype(np.float32)
        vis = (rng.random((batch, k)) < 0.8).astype(np.float32)
        annotated = np.zeros((batch, k), np.float32)  # half COCO instances, half MPII instances
        annotated[: batch // 2, coco] = 1
        annotated[batch // 2:, mpii] = 1
        labels = codec.encode(kpts, vis * annotated)
        b = dict(img=torch.from_numpy(rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)),
                 target_x=torch.from_numpy(labels['keypoint_x_labels'].astype(np.float32)),
                 target_y=torch.from_numpy(labels['keypoint_y_labels'].astype(np.float32)),
                 target_weight=torch.from_numpy(labels['keypoint_weights'].astype(np.float32)))
        for name, (tw, th) in teacher_sizes.items():
            b[f'crop_{name}'] = torch.from_numpy(rng.integers(0, 256, (batch, th, tw, 3), dtype=np.uint8))
        # view boxes (w, h) before the aspect fix, tall to wide: they set each row's teacher->student bin map
        b['box_scale'] = torch.from_numpy(rng.uniform([60, 120], [240, 320], (batch, 2)).astype(np.float32))
        if pin:
            b = {k: v.pin_memory() for k, v in b.items()}
        batches.append(b)
    return batches


def build_planes(rng, teachers, batches, student_size, split, plane_rows: int, device, batch: int, cache):
    """One in-memory view plane per teacher (the dict read_view_plane returns), built by running the
    teachers on the batches' crops and windowing their student-bin log-probs; the N0 = NB * B encoded rows
    are tiled to >= plane_rows rows. Returns planes, specs, and each batch's plane rows (random tile)."""
    n0 = len(batches) * batch
    student_bins = (int(student_size[0] * split), int(student_size[1] * split))
    tiles = max(1, -(-plane_rows // n0))
    planes, specs = {}, {}
    for name, model in teachers.items():
        parts = {f'{a}_{f}': [] for a in 'xy' for f in ('start', 'values', 'tail', 'seen', 'outside')}
        for b in batches:
            x, y = run_teacher(model, b[f'crop_{name}'], device, batch)
            bin_map = teacher_to_student_bins(student_size, model.input_size, b['box_scale'].numpy(), split,
                                              model.codec.simcc_split_ratio)
            sx, sy, ox, oy = (a.float().cpu().numpy() for a in to_student_bins(x, y, bin_map, student_bins))
            for axis, logp, outside in (('x', sx, ox), ('y', sy, oy)):
                # random weights under fp16 may overflow; keep the plane valid (-inf = unseen bins stay)
                logp = np.nan_to_num(logp, nan=-30.0, posinf=0.0, neginf=-np.inf)
                # the config's encoding (a window wider than the bins is the whole row, as the cache stores it)
                start, values, tail, seen = encode_window(logp, min(int(cache.window), logp.shape[-1]),
                                                          int(cache.tail_blocks), int(cache.levels),
                                                          float(cache.rd_lambda))
                parts[f'{axis}_start'].append(start)
                parts[f'{axis}_values'].append(values)
                parts[f'{axis}_tail'].append(tail)
                parts[f'{axis}_seen'].append(seen)
                parts[f'{axis}_outside'].append(np.nan_to_num(outside).astype(np.float16))
        plane = {k: np.tile(np.concatenate(v), (tiles,) + (1,) * (np.concatenate(v).ndim - 1))
                 for k, v in parts.items()}
        plane.update(bins_x=student_bins[0], bins_y=student_bins[1], levels=int(cache.levels))
        planes[name] = plane
        specs[name] = dict(union_joints=union_indices(model_skeleton(model.skeleton_name, UNION), UNION).tolist())
    rows = [j * batch + np.arange(batch) + n0 * rng.integers(0, tiles, batch) for j in range(len(batches))]
    rows = [r[rng.permutation(batch)] for r in rows]  # random order within the batch, as epoch_order gives
    return planes, specs, rows, n0 * tiles


class Trainer:
    """One student trained with the config's recipe by the product's step; `step` is one batch of a mode."""

    def __init__(self, cfg, model_cfg, device, batch: int, teachers, planes, specs, amp: bool | None):
        torch.manual_seed(0)
        tc = cfg.train
        self.device, self.batch = device, batch
        self.model = build_model(str(resolve(model_cfg))).to(device).train()
        optimizer = make_optimizer(self.model, tc.weight_decay, learning_rate(tc.base_lr, tc.auto_scale_lr, batch))
        ema = ModelEMA(self.model, momentum=float(tc.ema_momentum))
        beta = head_loss_beta(model_cfg)
        self.steps = {}
        for supervised in (False, True):  # one model, optimizer and EMA; the two loss-weight settings
            settings = StepSettings.from_recipe(tc, device, beta, supervised=supervised)
            if amp is not None:  # --amp on|off instead of the config's train.amp
                settings = dataclasses.replace(settings, amp=amp and device.type == 'cuda')
            self.steps[supervised] = TrainStep(self.model, optimizer, ema, settings)
        self.settings = self.steps[False].settings
        self.kd_scale = kd_weight_schedule(0, tc.epochs, decay=bool(tc.kd_decay))
        self.num_joints = model_skeleton(self.model.skeleton_name, UNION).num_joints
        self.student_size, self.split = tuple(self.model.input_size), self.model.codec.simcc_split_ratio
        self.teachers, self.planes, self.specs = teachers, planes, specs
        self.sums = {}

    def step(self, mode: str, batch: dict, rows: np.ndarray) -> None:
        if mode == 'offline':
            targets = teacher_targets_offline(self.planes, rows, self.specs, self.num_joints, self.device)
        elif mode == 'online':
            targets = teacher_targets_online(self.teachers, batch, self.student_size, self.split,
                                             UNION, self.device, self.batch)
        else:
            targets = {}
        _, parts = self.steps[mode == 'supervised'](batch, targets, kd_scale=self.kd_scale)
        for k, v in parts.items():  # as the train stage: summed on the device, no host sync in the step
            self.sums[k] = self.sums.get(k, 0.0) + v.detach() * self.batch


def time_steps(trainer: Trainer, mode: str, batches, rows, start: int, k: int) -> list[float]:
    times = []
    for i in range(start, start + k):
        j = i % len(batches)
        sync(trainer.device)
        t0 = time.perf_counter()
        trainer.step(mode, batches[j], rows[j])
        sync(trainer.device)
        times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    parser.add_argument('--batch-size', type=int, default=None, help='default 32 on CPU, 256 on CUDA')
    parser.add_argument('--steps', type=int, default=None, help='timed steps per mode per rep (default 2 CPU, 10 CUDA)')
    parser.add_argument('--reps', type=int, default=None, help='repetitions (default 3 CPU, 5 CUDA)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps per mode first (default 1 CPU, 5 CUDA)')
    parser.add_argument('--batches', type=int, default=None, help='distinct batches, cycled (default 2 CPU, 4 CUDA)')
    parser.add_argument('--plane-rows', type=int, default=16384, help='rows of the in-memory cache plane')
    parser.add_argument('--students', default='s,t')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--amp', choices=('on', 'off'), default=None,
                        help="the student's bf16 autocast on CUDA (default: the config's train.amp)")
    parser.add_argument('--quick', action='store_true', help='tiny run for the smoke test: batch 4, 1 rep, 2 steps')
    args = parser.parse_args(argv)

    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    cuda = device.type == 'cuda'
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f'--device {device}: no CUDA device is available here')
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        batch, steps, reps, warmup, nb, plane_rows = 4, 2, 1, 1, 1, 64
    else:
        batch = args.batch_size or (256 if cuda else 32)
        steps = args.steps or (10 if cuda else 2)
        reps = args.reps or (5 if cuda else 3)
        warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
        nb = args.batches or (4 if cuda else 2)
        plane_rows = args.plane_rows
    students = [s for s in args.students.split(',') if s]
    unknown = set(students) - set(STUDENTS)
    if unknown:
        raise SystemExit(f'--students: unknown {sorted(unknown)} (known: {sorted(STUDENTS)})')
    device_name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
    print(f'device {device} ({device_name}), torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'batch {batch}, {reps} reps x {steps} steps per mode, warm-up {warmup}, {nb} batches', flush=True)

    # -- teachers, batches and the cache plane: built once, shared by every student ----------------
    t_setup = time.perf_counter()
    cfg = load_config(CONFIG)
    student_cfgs = {s: STUDENTS[s] or cfg.student.config for s in students}
    teachers = {}
    for name, t in cfg.teachers.items():
        torch.manual_seed(1)
        m = build_model(str(resolve(t.config))).to(device).eval()
        teachers[name] = m.to(memory_format=torch.channels_last) if cuda else m
    ref = build_model(str(resolve(student_cfgs[students[0]])))  # geometry + codec (identical for s and t)
    student_size, split = tuple(ref.input_size), ref.codec.simcc_split_ratio
    for s in students:
        m = build_model(str(resolve(student_cfgs[s])))
        if tuple(m.input_size) != student_size or m.codec.simcc_split_ratio != split:
            raise SystemExit(f'student {s}: geometry differs from {students[0]}; run them separately')
    rng = np.random.default_rng(0)
    batches = make_batches(rng, nb, batch, student_size, ref.codec,
                           {n: tuple(m.input_size) for n, m in teachers.items()}, pin=cuda)
    planes, specs, rows, n_plane = build_planes(rng, teachers, batches, student_size, split, plane_rows,
                                                device, batch, cfg.cache)
    plane_mb = sum(v.nbytes for p in planes.values() for v in p.values() if isinstance(v, np.ndarray)) / 2**20
    print(f'setup {time.perf_counter() - t_setup:.1f} s; cache plane {n_plane} rows x 2 teachers, '
          f'window {cfg.cache.window}, {plane_mb:.0f} MiB in memory', flush=True)

    # -- timing ------------------------------------------------------------------------------------
    result = dict(benchmark='train_step', device=str(device), device_name=device_name, torch=torch.__version__,
                  threads=torch.get_num_threads(), cpu_count=os.cpu_count(), batch=batch, steps=steps, reps=reps,
                  warmup=warmup, distinct_batches=nb, plane_rows=n_plane, window=int(cfg.cache.window),
                  config=str(CONFIG.relative_to(ROOT)), quick=bool(args.quick), students={})
    for s in students:
        trainer = Trainer(cfg, student_cfgs[s], device, batch, teachers, planes, specs, amp=None if args.amp is None else args.amp == 'on')
        st = trainer.settings
        result.update(amp=dict(student='bf16' if st.amp else None, teachers='fp16' if cuda else None),
                      channels_last=st.channels_last, recipe=dict(
                          overlap=st.overlap, gt_reduction=st.gt_reduction, grad_clip=st.grad_clip,
                          temperature=st.temperature, loss_weights=st.loss_weights))
        for mode in MODES:
            time_steps(trainer, mode, batches, rows, 0, warmup)
        samples = {mode: [] for mode in MODES}
        counters = {mode: 0 for mode in MODES}
        for r in range(reps):
            order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]  # rotate: no mode always goes first
            for mode in order:
                samples[mode] += time_steps(trainer, mode, batches, rows, counters[mode], steps)
                counters[mode] += steps
        figures = {}
        for mode in MODES:
            med = statistics.median(samples[mode])
            figures[mode] = dict(median_step_s=round(med, 5), mean_step_s=round(statistics.fmean(samples[mode]), 5),
                                 min_step_s=round(min(samples[mode]), 5), images_per_s=round(batch / med, 2),
                                 steps_timed=len(samples[mode]))
        ips = {mode: batch / statistics.median(samples[mode]) for mode in MODES}
        ratios = dict(offline_over_supervised=round(ips['offline'] / ips['supervised'], 4),
                      offline_over_online=round(ips['offline'] / ips['online'], 4))
        goals = {k: dict(goal=GOALS[k][s], met=bool(ratios[k] >= GOALS[k][s])) for k in ratios}
        result['students'][s] = dict(config=student_cfgs[s], modes=figures, ratios=ratios, goals=goals)
        print(f'\nRTMPose-{s} {UNION.name} 256x192, batch {batch}:')
        print(f'  {"mode":<11s} {"median s/step":>14s} {"mean s/step":>12s} {"images/s":>10s}')
        for mode in MODES:
            f = figures[mode]
            print(f'  {mode:<11s} {f["median_step_s"]:14.4f} {f["mean_step_s"]:12.4f} {f["images_per_s"]:10.1f}')
        for k, v in ratios.items():
            print(f'  {k:<24s} {v:7.3f}  (goal >= {goals[k]["goal"]}: {"met" if goals[k]["met"] else "NOT met"})')
        del trainer
        if cuda:
            torch.cuda.empty_cache()
    result['all_goals_met'] = all(g['met'] for st in result['students'].values() for g in st['goals'].values())
    if not cuda:
        result['note'] = 'CPU figures; the goals are stated for the GPU training setup'
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()

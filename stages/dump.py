"""Stage one: every teacher over every crop and view, into the Zarr cache.

Work is cut into units of (view, chunk of instances) aligned with the cache's chunks. For each
unit, DataLoader workers decode the unit's images (once per image) and build contract 2's inputs
(data.views.teacher_inputs: each teacher's native crop of the view, the view boxes' scales); the
main process runs the teachers and maps their outputs into the student's bins
(teachers.targets.teacher_rows); a writer thread (or `dump_stage.writers` processes, where one core
cannot encode as fast as the teachers run: on a GPU) windows, encodes and stores the rows (cache.store) while the
next unit runs. A unit is marked done per teacher after
its rows are written, so an interrupted dump resumes where it stopped; under torchrun rank r takes
units r, r+N, ... (disjoint chunks).
"""
from __future__ import annotations

import multiprocessing
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import torch
from tqdm import tqdm

from cache.fidelity import fidelity_report
from cache.manifest import BIN_MAP_RULE, code_version
from cache.store import create_cache, open_cache, open_for_writing, reconstruct_rows, write_unit_here
from data.images import check_image_files, decode_grouped
from data.datasets import datasets_union
from data.skeletons import model_skeleton, union_indices
from data.views import VIEW_FIELDS, teacher_inputs
from pipeline.config import resolve
from pipeline.cache_check import check_cache, expected_manifest
from pipeline.models import kd_temperature, model_geometry
from pipeline.run import cache_path, dist_info, pick_device, split_instances, split_views, teacher_datasets, view_stages
from stages.evaluation import warn_missing_head_boxes
from teachers.checkpoints import load_model
from teachers.targets import student_bins, teacher_rows


class UnitCrops(torch.utils.data.Dataset):
    """One item = the crops of one unit (a view, a chunk of instances) for every teacher input size."""

    def __init__(self, table, views, units, chunk_size, input_sizes: dict):
        self.table, self.views, self.units, self.chunk = table, views, units, chunk_size
        self.input_sizes = input_sizes

    def __len__(self):
        return len(self.units)

    def __getitem__(self, k):
        view, chunk = self.units[k]
        rows = np.arange(chunk * self.chunk, min((chunk + 1) * self.chunk, len(self.table)))
        crops, box_scales = teacher_inputs(decode_grouped(self.table.image_path[rows]), self.table.bbox[rows],
                                           self.views[view, rows], self.input_sizes)
        return dict(view=view, chunk=chunk, rows=rows, crops=crops, box_scales=box_scales)


def dump_teachers(cfg, split='train', num_views=None, teacher_names=None, device=None,
                  batch_size=None, num_workers=None, resume=True):
    """Run the config's teachers (or `teacher_names`) over every pending unit of the split's cache;
    returns the per-teacher stats written to the cache manifest."""
    t_start = time.perf_counter()
    device = pick_device(device, cfg.dump_stage.device)
    batch_size = batch_size or cfg.dump_stage.batch_size
    num_workers = cfg.dump_stage.num_workers if num_workers is None else int(num_workers)
    rank, world = dist_info()
    stages = view_stages(cfg, split)
    if num_views and split == 'train':  # --views: stage 1's count
        stages[0]['num_views'] = int(num_views)
    num_views = sum(st['num_views'] for st in stages)

    checks = []
    table = split_instances(cfg, split, checks)
    if rank == 0:
        for check in checks:
            print(check.summary())
        if split == 'val':  # said now, not first noticed as empty PCKh cells in the report
            warn_missing_head_boxes(cfg)
    check_image_files(table.image_path)  # before the store exists: a bad image stops nothing half-made
    views = split_views(cfg, table, stages)
    student = model_geometry(cfg.student.config)
    models, specs = load_teachers(cfg, split, teacher_names, device, student, announce=rank == 0)
    cache = open_store(cfg, split, stages, table, views, specs, checks,
                       resume, rank, world, device, list(models))

    pending = {name: set(map(tuple, cache.pending_units(name))) for name in models}
    units = sorted(set().union(*pending.values()))[rank::world]
    loader = torch.utils.data.DataLoader(
        UnitCrops(table, views, units, cache.chunk_size, {name: tuple(m.input_size) for name, m in models.items()}),
        batch_size=None, shuffle=False, num_workers=num_workers, pin_memory=device.type == 'cuda',
        persistent_workers=False, prefetch_factor=4 if num_workers else None)
    done = run_units(cache, models, pending, loader, student, device, batch_size, split, rank, t_start,
                     writers=int(cfg.dump_stage.writers))

    if world > 1:
        torch.distributed.barrier()  # every rank's units are written before rank 0 sums them
    stats = record_stats(cfg, cache, models, done['fidelity_sample'], time.perf_counter() - t_start, device,
                         batch_size, rank)
    print(f'{cache.path}: {len(table)} instances x {num_views} views; ' + ', '.join(
        f'{n}: {done["rows"][n]} rows, {done["forward_s"][n]:.1f}s forward' for n in models))
    return stats


def load_teachers(cfg, split, teacher_names, device, student, announce):
    """(the teachers to run {name: model}, every teacher's cache spec {name: spec}). A spec says which
    union joints the teacher fills, the student's bins, the bin-map rule and the datasets it runs on."""
    names = teacher_names or list(cfg.teachers)
    unknown = set(names) - set(cfg.teachers)
    if unknown:
        raise ValueError(f'--teachers: {sorted(unknown)} not in the config (has {list(cfg.teachers)})')
    bins = student_bins(student['input_size'], student['split'])
    union = datasets_union(cfg.datasets)
    models, specs = {}, {}
    for name, t in cfg.teachers.items():
        model = load_model(resolve(t.config), resolve(t.checkpoint), device=device).eval()
        if device.type == 'cuda':
            model = model.to(memory_format=torch.channels_last)
        specs[name] = dict(union_joints=union_indices(model_skeleton(model.skeleton_name, union), union).tolist(),
                           bins_x=bins[0], bins_y=bins[1], datasets=teacher_datasets(cfg, name, split),
                           bin_map=dict(per_instance=True, rule=BIN_MAP_RULE,
                                        teacher_input_size=list(model.input_size),
                                        teacher_split=model.codec.simcc_split_ratio))
        if name in names:
            models[name] = model
            if announce and specs[name]['datasets'] is not None:
                print(f'{split}: teacher {name} runs on {", ".join(specs[name]["datasets"])} only '
                      '(the rows the report scores)')
    return models, specs


def open_store(cfg, split, stages, table, views, specs, checks, resume, rank, world, device, run_teachers):
    """The split's cache, created (rank 0) unless a matching one exists to resume; refused when it was
    built from another config. A resumed cache's done units of `run_teachers` are verified first, and
    those failing a checksum become pending again."""
    path = cache_path(cfg, split)
    # Every rank takes the same branch: rank 0 creates (or keeps) the store, the others wait for it.
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    resuming = path.exists() and resume
    if rank == 0 and not resuming:
        create_cache(path, manifest=dict(expected_manifest(cfg, split, stages, table), code_version=code_version(),
                                         input_checks=[c.as_dict() for c in checks]), instances=table, views=views,
                     view_fields=list(VIEW_FIELDS), teachers=specs, window=int(cfg.cache.window),
                     lossless=cfg.cache.lossless, chunk_size=int(cfg.cache.chunk_size),
                     tail_blocks=int(cfg.cache.tail_blocks), levels=int(cfg.cache.levels),
                     rd_lambda=float(cfg.cache.rd_lambda),
                     overwrite=not resume)
    if world > 1:
        torch.distributed.barrier()
    cache = open_cache(path, mode='r+')
    check_cache(cfg, split, cache, table, stages, exact=True, finished=False, remedy='use --no-resume to start over')
    if rank == 0 and resuming:
        repair_units(cache, run_teachers)
    if world > 1:
        torch.distributed.barrier()  # every rank lists the pending units after the repair
    return cache


def repair_units(cache, teachers) -> None:
    """Check the stored checksums of the teachers' done units and clear the markers of those that fail:
    the resume path then recomputes them like any unit a killed dump left pending."""
    found = cache.verify(teachers)
    for name, result in found.items():
        cache.mark_pending(name, list(result.failed))
    failed = sum(len(r.failed) for r in found.values())
    print(f'{cache.path}: verified {sum(r.checked for r in found.values())} units, {failed} failed their '
          'checksum and are recomputed')


def verify_cache(cfg, split='train') -> dict:
    """Read-only check of every chunk's stored checksum in the split's cache (e.g. after copying it to
    another machine): prints the counts per teacher; the first chunk that fails raises its CacheChunkError."""
    cache = open_cache(cache_path(cfg, split))
    found = cache.verify()
    for name, result in found.items():
        units = cache.n_views * int(cache.chunks_of(name).sum())
        print(f'{cache.path}: {name}: {result.checked} of {units} units done and verified, '
              f'{len(result.failed)} failed their checksum')
    failed = [error for result in found.values() for error in result.failed.values()]
    if failed:
        raise failed[0]
    return found


def unit_writer(cache, writers: int):
    """(executor, write function): one thread, or `writers` processes that each open the cache. Units
    write disjoint chunks (and mark themselves done last), so they may be written in any order, by
    any process."""
    if writers <= 1:
        return ThreadPoolExecutor(1), cache.write_unit
    pool = ProcessPoolExecutor(writers, mp_context=multiprocessing.get_context('spawn'),
                               initializer=open_for_writing, initargs=(cache.path,))
    return pool, write_unit_here


def run_units(cache, models, pending, loader, student, device, batch_size, split, rank, t_start,
              writers: int = 1) -> dict:
    """Every unit through every teacher that still needs it; the writer(s) overlap the encode + Zarr
    write with the next unit's forward pass. Returns forward seconds and rows per teacher, and a few
    full rows per teacher kept aside to measure what the store loses."""
    executor, write = unit_writer(cache, writers)
    in_flight: deque = deque()
    limit = 2 * max(writers, 4)  # units queued for the writers: bounds the memory they hold
    forward_s = {name: 0.0 for name in models}
    rows_done = {name: 0 for name in models}
    fidelity_sample = {name: [] for name in models}
    bar = tqdm(total=sum(len(units) for units in pending.values()), desc=f'dump {split}', unit='unit',
               disable=rank != 0)
    try:
        for item in loader:
            view, chunk = int(item['view']), int(item['chunk'])
            for name, model in models.items():
                if (view, chunk) not in pending[name]:
                    continue
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                sx, sy, ox, oy = teacher_rows(model, item['crops'][name], item['box_scales'], student['input_size'],
                                              student['split'], device, batch_size)
                sx, sy, ox, oy = (a.cpu().numpy() for a in (sx, sy, ox, oy))  # the sync ends the timing
                seconds = time.perf_counter() - t0
                forward_s[name] += seconds
                rows_done[name] += len(sx)
                if len(fidelity_sample[name]) < 2:
                    fidelity_sample[name].append((view, np.asarray(item['rows'][:128]), sx[:128], sy[:128]))
                in_flight.append(executor.submit(write, name, view, chunk, sx, sy, ox, oy, seconds))
                while len(in_flight) > limit or (in_flight and in_flight[0].done()):
                    in_flight.popleft().result()  # a writer's error stops the dump here
                bar.update(1)
            bar.set_postfix(inst_per_s=f'{sum(rows_done.values()) / max(time.perf_counter() - t_start, 1e-9):.0f}')
        while in_flight:
            in_flight.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    bar.close()
    return dict(forward_s=forward_s, rows=rows_done, fidelity_sample=fidelity_sample)


def record_stats(cfg, cache, models, fidelity_sample, wall, device, batch_size, rank) -> dict:
    """Per teacher: forward seconds and rows summed over its done units (so a resumed or sharded dump
    reports what one uninterrupted run would), wall time, and the fidelity of the stored rows, at the
    distribution the student is distilled towards (rows sharpened by beta / T) and as stored."""
    fidelity = fidelity_report(cache, {name: list(stored_vs_full(cache, name, fidelity_sample[name]))
                                       for name in models if fidelity_sample[name]},
                               temperatures=sorted({kd_temperature(cfg), 1.0}))
    stats = dict(cache.manifest.get('stats', {}))
    for name in models:
        prev = stats.get(name, {})
        stats[name] = dict(forward_seconds=cache.forward_seconds(name), rows=cache.written_rows(name),
                           wall_seconds=prev.get('wall_seconds', 0.0) + wall,
                           device=str(device), batch_size=batch_size,
                           # a teacher with nothing left to do keeps its earlier KL measurement
                           fidelity={**prev.get('fidelity', {}), **fidelity['teachers'][name]})
    if rank == 0:
        cache.update_manifest(stats=stats)
    return stats


def stored_vs_full(cache, name, samples):
    """(full rows, rows read back from the store) pairs, per axis, for the fidelity report."""
    for view, rows, full_x, full_y in samples:
        rx, ry, _, _ = reconstruct_rows(cache.read_rows(name, view, rows))
        yield full_x, rx
        yield full_y, ry


def cache_fidelity(cfg, split='train', samples=256, device=None):
    """Contract 2, end to end: reconstructed cache rows vs the live teacher on the replayed views."""
    device = pick_device(device, cfg.dump_stage.device)
    cache = open_cache(cache_path(cfg, split))
    table = cache.instances
    student = model_geometry(cfg.student.config)
    student_size = student['input_size']
    rng = np.random.default_rng(0)
    out = {}
    for name, t in cfg.teachers.items():
        model = load_model(resolve(t.config), resolve(t.checkpoint), device=device).eval()
        view = int(rng.integers(cache.n_views))
        rows = np.sort(rng.choice(len(table), size=min(samples, len(table)), replace=False))
        crops, box_scales = teacher_inputs(decode_grouped(table.image_path[rows]), table.bbox[rows],
                                           cache.views[view, rows], {name: model.input_size})
        sx, sy, _, _ = (a.cpu().numpy() for a in teacher_rows(
            model, crops[name], box_scales, student_size, student['split'], device))
        rx, ry, _, _ = reconstruct_rows(cache.read_rows(name, view, rows))
        out[name] = (view, [(sx, rx), (sy, ry)])
    report = fidelity_report(cache, {n: pairs for n, (_, pairs) in out.items()}, sorted({kd_temperature(cfg), 1.0}))
    for n, (view, _) in out.items():
        report['teachers'][n]['view'] = view
    return report

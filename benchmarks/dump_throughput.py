"""Dump throughput: the whole dump (decode, replay, forward, map, encode, write) against the teachers'
forward pass alone on the same crops, batch and device, with a per-step breakdown.

1. `cli.py dump-teachers` into a scratch cache (V views of the train split); its manifest gives the
   wall time and rows: full-dump crops/s = teacher rows / wall seconds (table loading included).
2. In this process, over the same views and instances read back from that cache: decode + replay
   each teacher's native crops, then per teacher the forward pass alone, the map into student bins,
   and the window encoding, each timed on its own (the write is what is left of the full dump).
ratio = full-dump crops/s / forward-only crops/s (the goal is >= 0.9: the writers and DataLoader
workers should hide everything but the forward pass). encode_rows_per_s: instance rows (one teacher,
x and y) the encoding alone does per second of one core; --writers sets dump_stage.writers (None: the
config's). Last stdout line: one JSON object.

    python benchmarks/dump_throughput.py [--config pipeline/configs/demo_synthetic.py] [--views 2]
                                         [--num-workers 0] [--writers N] [--device cpu]
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cache.store import encode_axis, open_cache  # noqa: E402
from data.images import decode_grouped  # noqa: E402
from data.views import teacher_inputs  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from teachers.checkpoints import load_model  # noqa: E402
from teachers.rtmpose import build_model  # noqa: E402
from teachers.targets import run_teacher, teacher_rows  # noqa: E402


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--views', default=2, show_default=True)
@click.option('--num-workers', default=0, show_default=True)
@click.option('--writers', type=int, default=None, help="dump_stage.writers (default: the config's)")
@click.option('--device', default='cpu', show_default=True)
@click.option('--out', default='outputs/bench/dump_throughput')
def main(config_path, views, num_workers, writers, device, out):
    cfg = load_config(resolve(config_path))
    out = resolve(out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    batch = int(cfg.dump_stage.batch_size)
    cmd = [sys.executable, str(ROOT / 'cli.py'), 'dump-teachers', '--config', config_path, '--views', str(views),
           '--device', device, '--num-workers', str(num_workers), '--cfg-options', f'cache.root={out}']
    writers = int(cfg.dump_stage.writers) if writers is None else writers
    cmd += ['--cfg-options', f'dump_stage.writers={writers}']
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    cache = open_cache(out / 'train.zarr')
    stats = cache.manifest['stats']
    rows = sum(s['rows'] for s in stats.values())
    wall = max(s['wall_seconds'] for s in stats.values())

    dev = torch.device(device)
    table, view_records = cache.instances, cache.views
    models = {n: load_model(resolve(t.config), resolve(t.checkpoint), device=dev).eval() for n, t in cfg.teachers.items()}
    s_model = build_model(str(resolve(cfg.student.config)))  # for its input size and SimCC split
    steps = {'decode_replay': 0.0, 'forward': 0.0, 'map': 0.0, 'encode': 0.0}
    n_crops = 0
    for v in range(views):
        for c in range(cache.n_chunks):
            idx = np.arange(c * cache.chunk_size, min((c + 1) * cache.chunk_size, len(table)))
            t0 = time.perf_counter()
            crops, box_scales = teacher_inputs(decode_grouped(table.image_path[idx]), table.bbox[idx],
                                               view_records[v, idx], {n: m.input_size for n, m in models.items()})
            steps['decode_replay'] += time.perf_counter() - t0
            for n, m in models.items():
                t0 = time.perf_counter()
                x, _ = run_teacher(m, crops[n], dev, batch)
                x.cpu()
                t1 = time.perf_counter()
                sx, sy, _, _ = (a.cpu().numpy() for a in teacher_rows(m, crops[n], box_scales, s_model.input_size,
                                                                      s_model.codec.simcc_split_ratio, dev, batch))
                t2 = time.perf_counter()
                spec = cache.teacher_spec(n)
                encode_axis(sx, spec, 'x')
                encode_axis(sy, spec, 'y')
                steps['encode'] += time.perf_counter() - t2
                steps['forward'] += t1 - t0
                steps['map'] += max((t2 - t1) - (t1 - t0), 0.0)  # teacher_rows = forward + map
                n_crops += len(idx)
    forward_only = n_crops / steps['forward']
    full = rows / wall
    result = dict(benchmark='dump_throughput', config=config_path, device=device, views=views, batch=batch,
                  num_workers=num_workers, writers=writers, torch_threads=torch.get_num_threads(), crops=rows,
                  encode_rows_per_s=rows / steps['encode'],
                  full_dump_crops_per_s=full, forward_only_crops_per_s=forward_only, ratio=full / forward_only,
                  goal=0.9, goal_met=full / forward_only >= 0.9,
                  seconds=dict(full_dump_wall=wall, **steps,
                               write_and_rest=max(wall - sum(steps.values()), 0.0)))
    print(f'full dump {full:.1f} crops/s vs forward only {forward_only:.1f} crops/s: ratio {full / forward_only:.2f}')
    print('seconds: ' + ', '.join(f'{k} {v:.1f}' for k, v in result['seconds'].items()))
    print(json.dumps(result))


if __name__ == '__main__':
    main()

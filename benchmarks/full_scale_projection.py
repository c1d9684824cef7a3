"""The full-scale run projected from measured per-crop costs: teacher forwards, cache size, teacher
compute of the dump against online distillation, for the config's views per stage.

Counts: COCO train2017 person instances with keypoints (149,813, what mmpose's CocoDataset keeps) and
MPII train (22,246 in mmpose's mpii_train.json), x the views of every stage x each teacher. Per crop:
each teacher's FLOPs at its input size (teachers.rtmpose.count_flops) and its eval forward time on this
machine's CPU (batch 32, median of --iters, after one warm-up), measured here; bytes per stored row from
--bytes-per-row (docs/results.md, 'Cache rows': 3.8 / 3.6 kB per instance·view·teacher on the demo
teachers' rows; the window + tail encoding stores a fixed number of values per row, whatever the bins).
GPU hours are not projected: no GPU was at hand to measure a per-crop time (benchmarks/gpu_suite.sh
is the place). Last stdout line: one JSON object.

    python benchmarks/full_scale_projection.py [--config pipeline/configs/coco_mpii_rtmpose-s.py]
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import click
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.run import view_stages  # noqa: E402
from teachers.rtmpose import build_model, count_flops  # noqa: E402

TRAIN_INSTANCES = {'coco': 149813, 'mpii': 22246}


def cpu_seconds_per_crop(model, batch: int, iters: int) -> float:
    w, h = model.input_size
    x = torch.randn(batch, 3, h, w)
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(iters):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times) / batch


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/coco_mpii_rtmpose-s.py')
@click.option('--bytes-per-row', default=3830, show_default=True, help='stored bytes per instance·view·teacher')
@click.option('--batch', default=32, show_default=True)
@click.option('--iters', default=3, show_default=True)
def main(config_path, bytes_per_row, batch, iters):
    cfg = load_config(resolve(config_path))
    stages = view_stages(cfg, 'train')
    views = sum(s['num_views'] for s in stages)
    epochs = int(cfg.train.epochs)
    n = sum(TRAIN_INSTANCES[d] for d in cfg.datasets)
    teachers = {}
    for name, t in cfg.teachers.items():
        model = build_model(str(resolve(t.config))).eval()
        teachers[name] = dict(input_size=list(model.input_size), gflops=count_flops(model) / 1e9,
                              cpu_ms_per_crop=1e3 * cpu_seconds_per_crop(model, batch, iters))
    forwards_dump = n * views * len(teachers)
    forwards_online = n * epochs * len(teachers)
    dump_gflop = sum(n * views * t['gflops'] for t in teachers.values())
    online_gflop = sum(n * epochs * t['gflops'] for t in teachers.values())
    cpu_hours = sum(n * views * t['cpu_ms_per_crop'] / 1e3 / 3600 for t in teachers.values())
    result = dict(benchmark='full_scale_projection', config=config_path, train_instances=n, epochs=epochs,
                  views_per_stage=[s['num_views'] for s in stages], views=views,
                  crops_per_instance_trained=views * (2 if cfg.train.flip_views else 1),
                  teachers=teachers, teacher_forwards_dump=forwards_dump, teacher_forwards_online=forwards_online,
                  teacher_compute_ratio_online_over_dump=forwards_online / forwards_dump,
                  dump_pflop=dump_gflop / 1e6, online_pflop=online_gflop / 1e6,
                  dump_cpu_hours_this_machine=cpu_hours,
                  cache_gb=n * views * len(teachers) * bytes_per_row / 1e9, bytes_per_row=bytes_per_row,
                  threads=torch.get_num_threads())
    print(f'{n} train instances x {views} views ({" + ".join(str(s["num_views"]) for s in stages)}) x '
          f'{len(teachers)} teachers = {forwards_dump / 1e6:.2f} M teacher forwards, once; online KD over '
          f'{epochs} epochs: {forwards_online / 1e6:.1f} M ({forwards_online / forwards_dump:.0f}x)')
    for name, t in teachers.items():
        print(f'  {name}: {t["input_size"][0]}x{t["input_size"][1]}, {t["gflops"]:.2f} GFLOP, '
              f'{t["cpu_ms_per_crop"]:.1f} ms per crop on this CPU ({torch.get_num_threads()} threads)')
    print(f'dump: {result["dump_pflop"]:.1f} PFLOP ({cpu_hours:.0f} h on this CPU); online: {result["online_pflop"]:.0f} PFLOP; '
          f'cache {result["cache_gb"]:.1f} GB at {bytes_per_row} B per row')
    print(json.dumps(result))


if __name__ == '__main__':
    main()

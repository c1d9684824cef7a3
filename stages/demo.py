"""`make demo`: the whole pipeline on the synthetic default, each step skipped when its output exists.

  1. synthetic twin datasets          data/synthetic
  2. two small teachers (GT only)     outputs/demo/teachers/{coco,mpii}
  3. dump-teachers (train + val)      outputs/demo/cache/{train,val}.zarr
  4. students: offline KD + baseline  outputs/demo/{offline,supervised}
  5. export-report                    outputs/demo/offline/report/report.html
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from pipeline.config import load_config, resolve


def run_demo(config_path: str) -> None:
    from data.synthetic import make_synthetic
    from stages.dump import dump_teachers
    from stages.report import export_report

    t0 = time.perf_counter()
    cfg = load_config(config_path)
    timings = {}

    def step(name, fn, done: bool):
        if done:
            print(f'== {name}: already done, skipped')
            return
        print(f'== {name}')
        t = time.perf_counter()
        fn()
        timings[name] = round(time.perf_counter() - t, 1)
        print(f'== {name}: {timings[name]} s')

    syn = cfg.synthetic
    out = resolve(syn.out)
    step('make-synthetic', lambda: make_synthetic(out, n_images=int(syn.images), seed=int(syn.seed)),
         (out / 'mpii' / 'annotations' / 'mpii_val.json').exists())
    # Independent trainings run side by side, one process and one thread each: on a shared 2-core
    # machine a 2-thread torch process next to other work was seen to slow down many-fold per step.
    todo = [name for name, t in cfg.teachers.items() if not resolve(t.checkpoint).exists()]
    step('train teachers ' + ','.join(todo),
         lambda: run_parallel([['train-student', '--config', config_path, '--mode', 'supervised',
                                '--as-teacher', name] for name in todo], resolve(cfg.work_dir) / 'logs'),
         not todo)
    work = resolve(cfg.work_dir)
    for split in ('train', 'val'):
        step(f'dump-teachers {split}', lambda split=split: dump_teachers(cfg, split=split),
             _dump_complete(cfg, split))
    modes = [m for m in ('offline', 'supervised') if not _finished(work / m, cfg)]
    step('train-student ' + ','.join(modes),
         lambda: run_parallel([['train-student', '--config', config_path, '--mode', m] for m in modes],
                              work / 'logs'), not modes)
    report = {}
    step('export-report', lambda: report.setdefault('path', export_report(work / 'offline', onnx=True)), False)
    total = time.perf_counter() - t0
    timings['total'] = round(total, 1)
    (work / 'demo_timings.json').write_text(json.dumps(timings, indent=1))
    print(f'\ndemo finished in {total:.0f} s; steps: {timings}')
    print(f'report: {report.get("path")}')


def run_parallel(commands: list[list[str]], log_dir) -> None:
    """Run `python cli.py ...` commands side by side, one thread each; their output goes to log files."""
    log_dir.mkdir(parents=True, exist_ok=True)
    cli = str(resolve('cli.py'))
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    procs = []
    for cmd in commands:
        log = log_dir / ('_'.join(c.strip('-') for c in cmd[3:] if not c.endswith('.py')) + '.log')
        print(f'   python cli.py {" ".join(cmd)}  (log: {log})')
        procs.append((cmd, log, subprocess.Popen([sys.executable, cli, *cmd], env=env,
                                                 stdout=open(log, 'w'), stderr=subprocess.STDOUT)))
    failed = [(cmd, log) for cmd, log, p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError('failed: ' + '; '.join(f'{" ".join(c)} (see {log})' for c, log in failed))


def _dump_complete(cfg, split) -> bool:
    from stages.common import cache_path
    path = cache_path(cfg, split)
    if not path.exists():
        return False
    from cache.store import open_cache
    try:
        cache = open_cache(path)
    except Exception:
        return False
    return all(len(cache.pending_units(t)) == 0 for t in cache.teacher_names)


def _finished(run_dir, cfg) -> bool:
    log = run_dir / 'log.jsonl'
    if not log.exists():
        return False
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return bool(lines) and lines[-1].get('epoch') == int(cfg.train.epochs)

"""What the cache costs the student: the demo student trained four ways, same schedule.

  online            live teachers on the replayed views (what offline distillation replaces)
  offline_lossless  from a cache of full fp16 rows (cache.lossless=True)
  offline_default   from the config's cache (window + tail blocks + seen range)
  online_seed1      live teachers again with seed 1 (other init, order and views): the noise floor

The first three share the seed, so the same initial weights, batch order and views; only where the
teacher targets come from differs. Runs go two at a time (one thread each, the slow online pair
together). Prints every report column of each run (val split, %) and its delta to `online`; the
noise floor is |online_seed1 - online| per column. Needs the shipped teachers and the demo data; the
default cache is the demo's (`make demo` writes it), the lossless one is dumped here.
Last stdout line: one JSON object.

    python benchmarks/offline_vs_online.py [--config pipeline/configs/demo_synthetic.py] [--epochs E]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.overlap_modes import summary  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.run import RunFolder  # noqa: E402

COLUMNS = [('coco', 'AP'), ('mpii', 'PCKh'), ('coco', 'pck_own'), ('coco', 'pck_missing'), ('coco', 'pck_all'),
           ('mpii', 'pck_own'), ('mpii', 'pck_missing'), ('mpii', 'pck_all')]


def cli(*args, log: Path, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / 'cli.py'), *args], env=env, stdout=open(log, 'w'),
                            stderr=subprocess.STDOUT)


def wait(procs):
    for name, p, log in procs:
        if p.wait() != 0:
            raise SystemExit(f'{name} failed, see {log}')


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--epochs', default=None, type=int, help="default: the config's train.epochs")
@click.option('--out', default='outputs/bench/offline_vs_online')
def main(config_path, epochs, out):
    cfg = load_config(resolve(config_path))
    out = resolve(out)
    out.mkdir(parents=True, exist_ok=True)
    lossless_root = out / 'cache-lossless'
    for opts, log in (([], 'dump_default.log'), ([f'cache.root={lossless_root}', 'cache.lossless=True'],
                                                 'dump_lossless.log')):
        extra = [a for o in opts for a in ('--cfg-options', o)]  # resumes (no work) when already complete
        wait([(log, cli('dump-teachers', '--config', config_path, *extra, log=out / log), out / log)])
    runs = {'online': ('online', []), 'online_seed1': ('online', ['seed=1']),
            'offline_lossless': ('offline', [f'cache.root={lossless_root}', 'cache.lossless=True']),
            'offline_default': ('offline', [])}
    n_epochs = epochs or int(cfg.train.epochs)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    for pair in (('online', 'online_seed1'), ('offline_lossless', 'offline_default')):
        procs = []
        for name in pair:
            if RunFolder(out / name).finished(n_epochs):  # a rerun resumes: finished runs are kept
                continue
            mode, opts = runs[name]
            args = ['train-student', '--config', config_path, '--mode', mode, '--work-dir', str(out / name),
                    '--overwrite']
            args += [a for o in opts for a in ('--cfg-options', o)] + (['--epochs', str(epochs)] if epochs else [])
            procs.append((name, cli(*args, log=out / f'{name}.log', env=env), out / f'{name}.log'))
        wait(procs)
    results = {name: summary(out / name / 'log.jsonl') for name in runs}

    def value(name, ds, key):
        v = results[name].get(ds, {}).get(key)
        return None if v is None else 100 * v

    table, noise = {}, {}
    for ds, key in COLUMNS:
        col = f'{ds} {key}'
        table[col] = {name: value(name, ds, key) for name in runs}
        a, b = table[col]['online'], table[col]['online_seed1']
        noise[col] = None if a is None or b is None else abs(b - a)
    print(f'{"column":18}' + ''.join(f'{n:>18}' for n in runs) + f'{"noise floor":>13}')
    for col, row in table.items():
        base = row['online']
        cells = ''.join(f'{"–":>18}' if v is None else
                        (f'{v:18.1f}' if n == 'online' or base is None else f'{v:9.1f} ({v - base:+5.1f})')
                        for n, v in row.items())
        print(f'{col:18}' + cells + ('' if noise[col] is None else f'{noise[col]:13.1f}'))
    deltas = {col: {n: (None if row[n] is None or row['online'] is None else row[n] - row['online'])
                    for n in runs if n != 'online'} for col, row in table.items()}
    checks = dict(
        within_noise=all(abs(d['offline_default']) <= noise[c] for c, d in deltas.items()
                         if d['offline_default'] is not None and noise[c] is not None),
        all21_not_below_online_minus_half=all(deltas[f'{ds} pck_all']['offline_default'] >= -0.5
                                              for ds in ('coco', 'mpii')
                                              if deltas[f'{ds} pck_all']['offline_default'] is not None))
    print(json.dumps(dict(benchmark='offline_vs_online', config=config_path, epochs=epochs or int(cfg.train.epochs),
                          table=table, deltas_to_online=deltas, noise_floor=noise, checks=checks)))


if __name__ == '__main__':
    main()

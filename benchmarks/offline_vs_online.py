"""What the cache costs the student: the demo student trained from live teachers and from the cache,
paired by seed, over several seeds.

Per seed S (views, initial weights and batch order all follow the seed):
  online_seedS            live teachers on the replayed views (what offline distillation replaces)
  offline_default_seedS   from the config's cache (window + tail blocks + seen range), dumped under S
and once, for the first seed:
  offline_lossless_seedS  from a cache of full fp16 rows (cache.lossless=True): the encoding's share

A pair shares everything but where the teacher targets come from, so `offline - online` per seed is
what the cache costs plus run-to-run variation; its mean over the seeds is the cost. The noise floor
is the spread of online itself between seeds (sample standard deviation): how far one run lands from
another. Five seeds by default: over three, one column (the MPII-style face joints, five joints of
~190 people) swung by 10 points between seeds and one poor run decided the verdict (docs/results.md).
Runs go two at a time, one thread each, longest first; finished runs and complete caches are
kept, so a rerun resumes. The first seed's default cache is the demo's (`make demo` writes it).
Prints every report column (val split, %) per run and the paired deltas. Run on the config's own
schedule, the result is also written to <work_dir>/offline_vs_online.json, which `export-report`
quotes in its cost section. Last stdout line: one JSON object.

    python benchmarks/offline_vs_online.py [--config pipeline/configs/demo_synthetic.py] [--seeds 0,1,2,3,4]
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.overlap_modes import run_columns  # noqa: E402
from data.datasets import datasets_union  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from data.files import atomic_write_text  # noqa: E402
from pipeline.run_folder import OFFLINE_VS_ONLINE_FILE, RunFolder  # noqa: E402

COLUMNS = [('coco', 'AP'), ('mpii', 'PCKh'), ('coco', 'pck_own'), ('coco', 'pck_missing'), ('coco', 'pck_all'),
           ('mpii', 'pck_own'), ('mpii', 'pck_missing'), ('mpii', 'pck_all')]
ALL21 = ('coco pck_all', 'mpii pck_all')


def run_cli(args: list[str], log: Path, threads: int | None = None) -> None:
    env = os.environ if threads is None else dict(os.environ, OMP_NUM_THREADS=str(threads),
                                                  MKL_NUM_THREADS=str(threads))
    with open(log, 'w') as f:
        if subprocess.run([sys.executable, str(ROOT / 'cli.py'), *args], env=env, stdout=f,
                          stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f'{args[0]} failed, see {log}')


def options(opts: list[str]) -> list[str]:
    return [a for o in opts for a in ('--cfg-options', o)]


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def paired(online: dict, offline: dict) -> dict:
    """Per column: both models' mean over the seeds, the mean paired delta (offline - online) and its
    standard error, and the noise floor (sample sd of online between seeds). `online` / `offline`:
    {seed: {column: value or None}}; a column missing from any run is left out."""
    seeds = sorted(online)
    out = {}
    for col in online[seeds[0]]:
        on = [online[s][col] for s in seeds]
        off = [offline[s][col] for s in seeds]
        if None in on or None in off:
            continue
        deltas = [b - a for a, b in zip(on, off)]
        d_mean, d_sd = mean_sd(deltas)
        on_mean, on_sd = mean_sd(on)
        out[col] = dict(online=on_mean, offline=mean_sd(off)[0], delta=d_mean, deltas=deltas,
                        delta_se=None if d_sd is None else d_sd / math.sqrt(len(deltas)), noise_floor=on_sd)
    return out


def checks(table: dict) -> dict:
    return dict(
        within_noise=all(abs(r['delta']) <= r['noise_floor'] for r in table.values() if r['noise_floor'] is not None),
        all21_not_below_online_minus_half=all(table[c]['delta'] >= -0.5 for c in ALL21 if c in table))


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--seeds', default='0,1,2,3,4', show_default=True, help='comma-separated; the first also gets the lossless run')
@click.option('--epochs', default=None, type=int, help="default: the config's train.epochs")
@click.option('--out', default='outputs/bench/offline_vs_online')
def main(config_path, seeds, epochs, out):
    cfg = load_config(resolve(config_path))
    seeds = [int(s) for s in seeds.split(',')]
    out = resolve(out)
    out.mkdir(parents=True, exist_ok=True)
    n_epochs = epochs or int(cfg.train.epochs)

    caches = {}  # name -> cfg options of its cache; the config's own cache for the config's seed
    for s in seeds:
        caches[f'default_seed{s}'] = [f'seed={s}'] + ([] if s == int(cfg.seed) else [f'cache.root={out / f"cache-seed{s}"}'])
    caches[f'lossless_seed{seeds[0]}'] = [f'seed={seeds[0]}', f'cache.root={out / "cache-lossless"}', 'cache.lossless=True']
    for name, opts in caches.items():  # a complete cache resumes with no work; both cores each
        print(f'dump {name}', flush=True)
        run_cli(['dump-teachers', '--config', config_path, *options(opts)], out / f'dump_{name}.log')

    runs = {f'online_seed{s}': ('online', [f'seed={s}']) for s in seeds}  # the slow ones first
    runs.update({f'offline_{c}': ('offline', opts) for c, opts in caches.items()})
    todo = [n for n in runs if not RunFolder(out / n).finished(n_epochs)]

    def train(name):
        mode, opts = runs[name]
        print(f'train {name}', flush=True)
        run_cli(['train-student', '--config', config_path, '--mode', mode, '--work-dir', str(out / name), '--overwrite',
                 *options(opts), *(['--epochs', str(epochs)] if epochs else [])], out / f'{name}.log', threads=1)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(train, todo))

    union = datasets_union(cfg.datasets)
    results = {name: run_columns(RunFolder(out / name), union, COLUMNS) for name in runs}
    table = paired({s: results[f'online_seed{s}'] for s in seeds}, {s: results[f'offline_default_seed{s}'] for s in seeds})
    s0 = seeds[0]
    lossless = {col: results[f'offline_lossless_seed{s0}'][col] - results[f'online_seed{s0}'][col]
                for col in table if results[f'offline_lossless_seed{s0}'][col] is not None}
    print(f'\nper run (val, %):\n{"column":18}' + ''.join(f'{n:>24}' for n in runs))
    for col in table:
        print(f'{col:18}' + ''.join(f'{"–":>24}' if results[n][col] is None else f'{results[n][col]:24.1f}'
                                    for n in runs))
    print(f'\npaired over seeds {seeds}: offline_default - online\n'
          f'{"column":18}{"online":>9}{"offline":>9}{"mean delta":>12}{"± se":>7}{"per seed":>22}{"noise floor":>13}'
          f'{"lossless, seed " + str(s0):>20}')
    for col, r in table.items():
        per_seed = ' '.join(f'{d:+.1f}' for d in r['deltas'])
        se = '' if r['delta_se'] is None else f'{r["delta_se"]:.1f}'
        floor = '' if r['noise_floor'] is None else f'{r["noise_floor"]:.1f}'
        print(f'{col:18}{r["online"]:9.1f}{r["offline"]:9.1f}{r["delta"]:+12.1f}{se:>7}{per_seed:>22}{floor:>13}'
              f'{lossless.get(col, float("nan")):+20.1f}')
    result = json.dumps(dict(benchmark='offline_vs_online', config=config_path, epochs=n_epochs, seeds=seeds,
                             runs=results, paired=table, lossless_minus_online=lossless, checks=checks(table)))
    if epochs is None:  # the config's own schedule: the report of its work_dir quotes this result
        atomic_write_text(resolve(cfg.work_dir) / OFFLINE_VS_ONLINE_FILE, result + '\n')
    print(result)


if __name__ == '__main__':
    main()

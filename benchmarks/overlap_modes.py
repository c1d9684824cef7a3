"""Which combination of the two teachers on the joints both cover? Measured on the synthetic twins.

Trains the demo student offline from the demo's cache once per overlap mode (separate, mean,
product, confidence) with the same seed, epochs and batches, two runs side by side (one thread
each), and prints the val metrics of each. Needs a finished `make demo` (teachers + cache).
Last stdout line: one JSON object.

    python benchmarks/overlap_modes.py [--epochs 16] [--modes separate,product,confidence]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.datasets import datasets_union  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.run_folder import RunFolder  # noqa: E402


def shared_pck(t: dict, union) -> float | None:
    """PCK over the joints several teachers cover (the only ones the overlap mode changes)."""
    shared = [j for j, s in enumerate(union.sources) if len(s) > 1]
    pj, n = np.asarray(t.get('per_joint', []), float)[shared], np.asarray(t.get('counts', []), float)[shared]
    ok = n > 0
    return float((pj[ok] * n[ok]).sum() / n[ok].sum()) if ok.any() else None


def summary(folder: RunFolder, union) -> dict:
    """A finished run's last val record, per dataset."""
    last = folder.read_log()[-1]
    out = {}
    for ds, m in last.get('val', {}).items():
        t = m.get('pck_truth', {})
        out[ds] = dict(pck_all=t.get('all'), pck_own=t.get('annotated'), pck_missing=t.get('lacking'),
                       pck_shared=shared_pck(t, union))
        if 'coco' in m:
            out[ds]['AP'] = m['coco']['AP']
        if 'pckh@0.5' in m:
            out[ds]['PCKh'] = m['pckh@0.5']['mean']
    return out


def run_columns(folder: RunFolder, union, columns) -> dict:
    """A finished run's (dataset, metric) columns in %, as 'dataset metric' -> value (None: not scored)."""
    r = summary(folder, union)
    return {f'{ds} {key}': (None if r.get(ds, {}).get(key) is None else 100 * r[ds][key]) for ds, key in columns}


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--epochs', default=None, type=int)
@click.option('--modes', default='separate,mean,product,confidence')
@click.option('--out', default='outputs/demo/overlap_modes')
def main(config_path, epochs, modes, out):
    cfg = load_config(resolve(config_path))
    modes = modes.split(',')
    out = resolve(out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    results = {}
    for i in range(0, len(modes), 2):  # two runs at a time: one per core
        procs = []
        for mode in modes[i:i + 2]:
            cfg_path = out / f'config_{mode}.py'
            cfg.train.overlap = mode
            cfg.dump(str(cfg_path))
            cmd = [sys.executable, str(ROOT / 'cli.py'), 'train-student', '--config', str(cfg_path),
                   '--mode', 'offline', '--work-dir', str(out / mode)]
            if epochs:
                cmd += ['--epochs', str(epochs)]
            procs.append((mode, subprocess.Popen(cmd, env=env, stdout=open(out / f'{mode}.log', 'w'),
                                                 stderr=subprocess.STDOUT)))
        for mode, p in procs:
            if p.wait() != 0:
                raise SystemExit(f'{mode} failed, see {out / (mode + ".log")}')
            results[mode] = summary(RunFolder(out / mode), datasets_union(cfg.datasets))
    for mode, r in results.items():
        print(mode, json.dumps(r))
    print(json.dumps(dict(benchmark='overlap_modes', config=config_path, epochs=epochs or int(cfg.train.epochs),
                          results=results)))


if __name__ == '__main__':
    main()

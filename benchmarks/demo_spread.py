"""Does the demo's verdict depend on the seed? Two finished demo runs side by side.

Runs the demo a second time under another seed (views, initial weights and batch order all change;
the shipped teachers and the data stay) unless that run exists, then prints, per report column, the
distilled student and the baseline of both runs, the student's gain in each, and the spread of each
model between the seeds. Last stdout line: one JSON object.

    python benchmarks/demo_spread.py [--config pipeline/configs/demo_synthetic.py] [--seed 1]
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.run_folder import RunFolder  # noqa: E402


def table(work: Path) -> dict:
    metrics = json.loads(RunFolder(work / 'offline').metrics.read_text())
    cols = metrics['table']['columns'][1:]
    rows = {r[0]: r[1:] for r in metrics['table']['rows']}
    student = next(v for k, v in rows.items() if k.startswith('student'))
    return {c: dict(student=s, baseline=b) for c, s, b in zip(cols, student, rows['baseline (no KD)'])}


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--seed', default=1, show_default=True)
def main(config_path, seed):
    cfg = load_config(resolve(config_path))
    base = resolve(cfg.work_dir)
    other = base.parent / f'{base.name}-seed{seed}'
    if not RunFolder(base / 'offline').metrics.exists():
        raise click.ClickException(f'{RunFolder(base / "offline").metrics}: no finished demo to compare '
                                   f'with; run `make demo` first')
    if not RunFolder(other / 'offline').metrics.exists():
        opts = [f'seed={seed}', f'work_dir={other}', f'cache.root={other / "cache"}']
        subprocess.run([sys.executable, str(ROOT / 'cli.py'), 'demo', '--config', config_path,
                        *[a for o in opts for a in ('--cfg-options', o)]], check=True)
    a, b = table(base), table(other)
    out = {}
    print(f'{"column":28} {"seed " + str(cfg.seed) + ": student / base (gain)":>30} '
          f'{"seed " + str(seed) + ": student / base (gain)":>30} {"spread st / base":>17}')
    for col in a:
        sa, ba, sb, bb = a[col]['student'], a[col]['baseline'], b[col]['student'], b[col]['baseline']
        if None in (sa, ba, sb, bb):
            continue
        out[col] = dict(seed_a=a[col], seed_b=b[col], gain_a=sa - ba, gain_b=sb - bb,
                        spread_student=abs(sa - sb), spread_baseline=abs(ba - bb))
        print(f'{col:28} {sa:12.1f} / {ba:5.1f} ({sa - ba:+5.1f}) {sb:12.1f} / {bb:5.1f} ({sb - bb:+5.1f}) '
              f'{abs(sa - sb):8.1f} / {abs(ba - bb):4.1f}')
    wins = {k: sum(v[f'gain_{k}'] > 0 for v in out.values()) for k in ('a', 'b')}
    print(f'student better on {wins["a"]} / {wins["b"]} of {len(out)} columns')
    print(json.dumps(dict(benchmark='demo_spread', config=config_path, seeds=[int(cfg.seed), seed], columns=out,
                          student_wins=wins, n_columns=len(out),
                          max_spread_student=max(v['spread_student'] for v in out.values()),
                          max_spread_baseline=max(v['spread_baseline'] for v in out.values()),
                          min_gain=min(min(v['gain_a'], v['gain_b']) for v in out.values()))))


if __name__ == '__main__':
    main()

"""How many cached views the student needs: its accuracy against views per instance, on the demo.

Per seed S (views, initial weights and batch order all follow the seed), on the demo's schedule:
  offline_vV[_noflip]   from a cache of the first V of 20 views drawn under S (V in 1, 2, 4, 8, 20 =
                        epochs), each mirrored in half its epochs (train.flip_views) or not (_noflip)
  supervised_vV_noflip  ground truth only, V = 4 fixed views or 20 (a fresh view every epoch)
  online_fresh          live teachers on a fresh view every epoch (V = 20, no mirror): the method the
                        cache replaces; every other arm is paired with it by seed
One cache of 20 views per seed serves every offline arm: a stage's first V views are the V views of a
smaller draw (data.views.draw_views), and training reads the first `views.num_views` of a larger cache.
Columns: the final val of each run (flip test as the config), %, the joints each twin lacks first.
Arms run in priority order (the arms every seed needs first, then the rest); finished runs and complete
caches are kept, so a rerun resumes and `--arms`/`--seeds` can add to a table. Runs go two at a time,
one thread each. Writes the table's JSON (--json) and a plot (--plot). Last stdout line: one JSON object.

    python benchmarks/views_trade.py [--seeds 0,1,2] [--arms all|NAME,...] [--plot docs/images/views_trade.png]
"""
from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.offline_vs_online import mean_sd, options, run_cli  # noqa: E402
from benchmarks.overlap_modes import run_columns  # noqa: E402
from data.datasets import datasets_union  # noqa: E402
from data.files import atomic_write_text  # noqa: E402
from pipeline.config import load_config, resolve  # noqa: E402
from pipeline.run_folder import RunFolder  # noqa: E402

COLUMNS = [('coco', 'pck_missing'), ('mpii', 'pck_missing'), ('coco', 'pck_all'), ('mpii', 'pck_all'),
           ('coco', 'AP'), ('mpii', 'PCKh')]
REFERENCE = 'online_fresh'


def arms(epochs: int) -> dict:
    """name -> (mode, views per instance, mirror), in priority order."""
    out = {'offline_v4': ('offline', 4, True), f'offline_v{epochs}': ('offline', epochs, True),
           REFERENCE: ('online', epochs, False)}
    for v in (1, 2, 8):
        out[f'offline_v{v}'] = ('offline', v, True)
    for v in (1, 2, 4, 8, epochs):
        out[f'offline_v{v}_noflip'] = ('offline', v, False)
    out['supervised_v4_noflip'] = ('supervised', 4, False)
    out[f'supervised_v{epochs}_noflip'] = ('supervised', epochs, False)
    return out


def paired(results: dict, name: str) -> dict:
    """Per column: the arm's mean over its seeds, and the mean paired delta to online_fresh with its
    standard error (None with one seed)."""
    seeds = sorted(s for s in results.get(name, {}) if s in results.get(REFERENCE, {}))
    out = {}
    for col in [f'{d} {k}' for d, k in COLUMNS]:
        vals = [results[name][s][col] for s in seeds]
        refs = [results[REFERENCE][s][col] for s in seeds]
        if not seeds or None in vals or None in refs:
            continue
        d_mean, d_sd = mean_sd([a - b for a, b in zip(vals, refs)])
        out[col] = dict(mean=mean_sd(vals)[0], delta=d_mean, delta_se=None if d_sd is None else d_sd / len(seeds) ** 0.5,
                        seeds=seeds)
    return out


def plot(table: dict, all_arms: dict, epochs: int, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cols = ['coco pck_missing', 'mpii pck_missing', 'coco pck_all', 'mpii pck_all']
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 3.4), sharex=True)
    for ax, col in zip(axes, cols):
        for mirror, style in ((True, 'o-'), (False, 's--')):
            pts = [(v, table[n][col]) for n, (mode, v, m) in all_arms.items()
                   if mode == 'offline' and m == mirror and col in table.get(n, {})]
            if pts:
                pts.sort()
                ax.errorbar([v for v, _ in pts], [r['delta'] for _, r in pts],
                            yerr=[r['delta_se'] or 0 for _, r in pts], fmt=style, capsize=3,
                            label='offline, mirrored' if mirror else 'offline, no mirror')
        ax.axhline(0, color='k', lw=0.8, label='online, fresh views')
        ax.set_xscale('log', base=2)
        ax.set_xticks([1, 2, 4, 8, epochs], [str(v) for v in (1, 2, 4, 8, epochs)])
        ax.set_title(col.replace('pck_', 'PCK ').replace('coco', 'COCO-style').replace('mpii', 'MPII-style'), fontsize=10)
        ax.set_xlabel('views per instance')
    axes[0].set_ylabel('offline − online-fresh (PCK points)')
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--seeds', default='0,1,2', show_default=True)
@click.option('--arms', 'which', default='all', help="comma-separated arm names, or 'all' (priority order)")
@click.option('--full-seeds', default=None, help='the arms every seed runs (default: offline_v4, offline_vE, '
                                                 'online_fresh); the other arms run on the first seed only')
@click.option('--all-seeds', is_flag=True, help='every arm on every seed')
@click.option('--out', default='outputs/bench/views_trade')
@click.option('--json', 'json_path', default=None, help='also write the result here')
@click.option('--plot', 'plot_path', default=None, help='write the figure here (PNG)')
def main(config_path, seeds, which, full_seeds, all_seeds, out, json_path, plot_path):
    cfg = load_config(resolve(config_path))
    epochs = int(cfg.train.epochs)
    seeds = [int(s) for s in seeds.split(',')]
    out = resolve(out)
    out.mkdir(parents=True, exist_ok=True)
    all_arms = arms(epochs)
    chosen = list(all_arms) if which == 'all' else which.split(',')
    unknown = set(chosen) - set(all_arms)
    if unknown:
        raise SystemExit(f'--arms: unknown {sorted(unknown)}; known: {list(all_arms)}')
    core = full_seeds.split(',') if full_seeds else list(all_arms)[:3]
    # priority: the core arms on every seed, then the rest on the first seed, then the rest on the others
    todo = [(n, s) for s in seeds for n in chosen if n in core]
    todo += [(n, s) for s in seeds[:1] for n in chosen if n not in core]
    if all_seeds:
        todo += [(n, s) for s in seeds[1:] for n in chosen if n not in core]

    def run_dir(name, seed):
        return out / f'{name}_seed{seed}'

    def cache_opts(seed):
        return [f'seed={seed}', f'cache.root={out / f"cache-seed{seed}"}']

    for seed in sorted({s for n, s in todo if all_arms[n][0] == 'offline'}):  # a complete cache resumes
        print(f'dump seed {seed}: {epochs} views', flush=True)
        run_cli(['dump-teachers', '--config', config_path, '--split', 'train',
                 *options(cache_opts(seed) + [f'views.num_views={epochs}'])], out / f'dump_seed{seed}.log')

    def train(job):
        name, seed = job
        mode, v, mirror = all_arms[name]
        if RunFolder(run_dir(name, seed)).finished(epochs):
            return
        print(f'train {name} seed {seed}', flush=True)
        opts = cache_opts(seed) + [f'views.num_views={v}', f'train.flip_views={mirror}',
                                   f'train.val_interval={epochs}', f'train.checkpoint_interval={epochs}']
        run_cli(['train-student', '--config', config_path, '--mode', mode, '--work-dir', str(run_dir(name, seed)),
                 '--overwrite', *options(opts)], out / f'{name}_seed{seed}.log', threads=1)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(train, todo))

    results = {}  # name -> seed -> column -> value (%)
    union = datasets_union(cfg.datasets)
    for name in all_arms:
        for seed in seeds:
            if RunFolder(run_dir(name, seed)).finished(epochs):
                results.setdefault(name, {})[seed] = run_columns(RunFolder(run_dir(name, seed)), union, COLUMNS)
    table = {name: paired(results, name) for name in results if name != REFERENCE}
    cols = [f'{d} {k}' for d, k in COLUMNS]
    print(f'\nval, %: per arm the mean over its seeds, then (offline or supervised) - {REFERENCE}, paired by seed '
          f'(mean ± standard error)\n{"arm":24}{"seeds":>8}' + ''.join(f'{c:>22}' for c in cols))
    for name in results:
        row = f'{name:24}{len(results[name]):>8}'
        for col in cols:
            vals = [results[name][s][col] for s in results[name] if results[name][s][col] is not None]
            r = table.get(name, {}).get(col)
            if not vals:
                row += f'{"–":>22}'
            elif r is None:
                row += f'{mean_sd(vals)[0]:22.1f}'
            else:
                se = '' if r['delta_se'] is None else f'±{r["delta_se"]:.1f}'
                row += f'{r["mean"]:10.1f} {r["delta"]:+6.1f}{se:>5}'
        print(row)
    if plot_path:
        plot(table, all_arms, epochs, resolve(plot_path))
    result = json.dumps(dict(benchmark='views_trade', config=config_path, epochs=epochs, seeds=seeds,
                             arms={n: dict(mode=m, views=v, mirror=f) for n, (m, v, f) in all_arms.items()},
                             runs={n: {str(s): c for s, c in r.items()} for n, r in results.items()},
                             paired_to_online_fresh=table))
    if json_path:
        atomic_write_text(resolve(json_path), result + '\n')
    print(result)


if __name__ == '__main__':
    main()

"""Peak memory as the data grows: the dump and offline training at 1x and 4x the demo's instances.

make-synthetic at the demo's size and at 4x the images (per style), then for each: `dump-teachers`
(train split, --views V) and one epoch of `train-student --mode offline`, each a process of its own
whose peak RSS (getrusage ru_maxrss) it reports at exit. The dump works unit by unit, so its peak
should stay flat (goal: within 10%); training holds one view plane per teacher in memory, so it
should grow by the planes only: reported as extra bytes per extra instance, next to the stored plane
bytes per instance. Last stdout line: one JSON object.

    python benchmarks/memory_growth.py [--config pipeline/configs/demo_synthetic.py] [--views 2]
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cache.store import open_cache  # noqa: E402
from pipeline.config import load_config, parse_cfg_options, resolve  # noqa: E402

# Runs cli.py in this process and prints its peak RSS (KiB) on stderr at exit.
PEAK = ("import atexit, resource, runpy, sys; "
        "atexit.register(lambda: print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "file=sys.stderr)); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def peak_rss(args: list[str]) -> int:
    r = subprocess.run([sys.executable, '-c', PEAK, str(ROOT / 'cli.py'), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f'cli.py {" ".join(args)} failed:\n{r.stderr[-2000:]}')
    return int(next(x for x in r.stderr.splitlines() if x.startswith('PEAK_RSS_KIB')).split()[1]) * 1024


@click.command()
@click.option('--config', 'config_path', default='pipeline/configs/demo_synthetic.py')
@click.option('--cfg-options', 'cfg_options', multiple=True, help='KEY=VALUE overrides of the config')
@click.option('--views', default=2, show_default=True)
@click.option('--out', default='outputs/bench/memory_growth')
def main(config_path, cfg_options, views, out):
    cfg = load_config(resolve(config_path), parse_cfg_options(cfg_options))
    out = resolve(out)
    images = int(cfg.synthetic.images)
    result = dict(benchmark='memory_growth', config=config_path, views=views, sizes={})
    for factor in (1, 4):
        data, cache_root = out / f'{factor}x' / 'data', out / f'{factor}x' / 'cache'
        if not (data / 'mpii' / 'annotations' / 'mpii_val.json').exists():
            subprocess.run([sys.executable, str(ROOT / 'cli.py'), 'make-synthetic', '--out', str(data),
                            '--images', str(images * factor), '--seed', '0'], check=True, stdout=subprocess.DEVNULL)
        opts = list(cfg_options) + [f'cache.root={cache_root}', f'views.num_views={views}', f'synthetic.out={data}']
        old = str(cfg.synthetic.out)
        for name, ds in cfg.datasets.items():  # every dataset path of the config, moved under this size's data
            for split, entry in ds.items():
                if isinstance(entry, dict):
                    for key, value in entry.items():
                        if isinstance(value, str) and value.startswith(old):
                            opts.append(f'datasets.{name}.{split}.{key}={data}{value[len(old):]}')
        extra = [a for o in opts for a in ('--cfg-options', o)]
        dump = peak_rss(['dump-teachers', '--config', config_path, *extra, '--no-resume', '--device', 'cpu'])
        train = peak_rss(['train-student', '--config', config_path, *extra, '--mode', 'offline', '--epochs', '1',
                          '--device', 'cpu', '--overwrite', '--work-dir', str(out / f'{factor}x' / 'run')])
        cache = open_cache(cache_root / 'train.zarr')
        plane = sum(cache._array(t, f'{a}_{f}').nbytes for t in cache.teacher_names for a in 'xy'
                    for f in ('start', 'values', 'tail', 'seen', 'outside')) / views  # one view, all teachers
        result['sizes'][f'{factor}x'] = dict(instances=cache.n_instances, dump_peak_rss=dump, train_peak_rss=train,
                                             plane_bytes=plane)
        print(f'{factor}x: {cache.n_instances} instances, dump peak {dump / 2**20:.0f} MiB, '
              f'train peak {train / 2**20:.0f} MiB, one view plane {plane / 2**20:.1f} MiB')
    a, b = result['sizes']['1x'], result['sizes']['4x']
    extra = b['instances'] - a['instances']
    result.update(dump_peak_ratio=b['dump_peak_rss'] / a['dump_peak_rss'],
                  train_bytes_per_extra_instance=(b['train_peak_rss'] - a['train_peak_rss']) / extra,
                  plane_bytes_per_instance=b['plane_bytes'] / b['instances'])
    print(f"dump peak 4x/1x {result['dump_peak_ratio']:.2f}; training grows {result['train_bytes_per_extra_instance']:.0f} "
          f"B per extra instance (view planes: {result['plane_bytes_per_instance']:.0f} B per instance, uncompressed)")
    print(json.dumps(result))


if __name__ == '__main__':
    main()

"""Peak memory as the data grows: the dump and offline training at 1x and 4x the demo's instances.

make-synthetic at the demo's size and at 4x the images (per style), then for each: `dump-teachers`
(train split, --views V) and one epoch of `train-student --mode offline`, each a process of its own
whose peak RSS (getrusage ru_maxrss) it reports at exit, with the median and 90th percentile of its
RSS sampled every 0.2 s. The dump works unit by unit, so its memory should stay flat (goal: within
10%); its RSS swings by ~200 MiB from unit to unit (decoded images, crops, activations), so its peak
is the highest of many swings and grows with the number of units even when nothing accumulates: the
median and p90 say whether anything does. Training holds one view plane per teacher in memory, so it
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

# Runs cli.py in this process, samples its RSS (KiB) every 0.2 s, and prints the peak (ru_maxrss) and
# the samples' median and 90th percentile on stderr at exit.
PEAK = """
import atexit, re, resource, runpy, sys, threading, time
samples = []
def sample():
    while True:
        with open('/proc/self/status') as f:
            samples.append(int(re.search(r'VmRSS:\\s+(\\d+)', f.read()).group(1)))
        time.sleep(0.2)
def report():
    s = sorted(samples) or [0]
    print('RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, s[len(s) // 2], s[int(0.9 * (len(s) - 1))],
          file=sys.stderr)
threading.Thread(target=sample, daemon=True).start()
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def rss(args: list[str]) -> dict:
    """Peak, median and p90 RSS (bytes) of `cli.py ARGS` run in a process of its own."""
    r = subprocess.run([sys.executable, '-c', PEAK, str(ROOT / 'cli.py'), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f'cli.py {" ".join(args)} failed:\n{r.stderr[-2000:]}')
    peak, median, p90 = (int(v) * 1024 for v in next(x for x in r.stderr.splitlines()
                                                      if x.startswith('RSS_KIB')).split()[1:])
    return dict(peak=peak, median=median, p90=p90)


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
        dump = rss(['dump-teachers', '--config', config_path, *extra, '--no-resume', '--device', 'cpu'])
        train = rss(['train-student', '--config', config_path, *extra, '--mode', 'offline', '--epochs', '1',
                          '--device', 'cpu', '--overwrite', '--work-dir', str(out / f'{factor}x' / 'run')])
        cache = open_cache(cache_root / 'train.zarr')
        plane = sum(cache._array(t, f'{a}_{f}').nbytes for t in cache.teacher_names for a in 'xy'
                    for f in ('start', 'values', 'tail', 'seen', 'outside')) / views  # one view, all teachers
        result['sizes'][f'{factor}x'] = dict(instances=cache.n_instances, dump_peak_rss=dump['peak'],
                                             dump_median_rss=dump['median'], dump_p90_rss=dump['p90'],
                                             train_peak_rss=train['peak'], plane_bytes=plane)
        print(f'{factor}x: {cache.n_instances} instances, dump peak {dump["peak"] / 2**20:.0f} MiB (median '
              f'{dump["median"] / 2**20:.0f}, p90 {dump["p90"] / 2**20:.0f}), train peak {train["peak"] / 2**20:.0f} '
              f'MiB, one view plane {plane / 2**20:.1f} MiB')
    a, b = result['sizes']['1x'], result['sizes']['4x']
    extra = b['instances'] - a['instances']
    result.update(dump_peak_ratio=b['dump_peak_rss'] / a['dump_peak_rss'],
                  dump_median_ratio=b['dump_median_rss'] / a['dump_median_rss'],
                  dump_p90_ratio=b['dump_p90_rss'] / a['dump_p90_rss'],
                  train_bytes_per_extra_instance=(b['train_peak_rss'] - a['train_peak_rss']) / extra,
                  plane_bytes_per_instance=b['plane_bytes'] / b['instances'])
    print(f"dump 4x/1x: peak {result['dump_peak_ratio']:.2f}, median {result['dump_median_ratio']:.2f}, "
          f"p90 {result['dump_p90_ratio']:.2f}; training grows {result['train_bytes_per_extra_instance']:.0f} "
          f"B per extra instance (view planes: {result['plane_bytes_per_instance']:.0f} B per instance, uncompressed)")
    print(json.dumps(result))


if __name__ == '__main__':
    main()
